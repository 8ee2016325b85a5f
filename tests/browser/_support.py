"""Helpers for the browser suite: Debian's Chromium driven by Selenium, axe-core, TOTP, the outbox.

Nothing here starts anything on import; ``conftest.py`` wires these into fixtures.

* Chromium and ChromeDriver are Debian's (``/usr/bin/chromium``, ``/usr/bin/chromedriver``): the
  ``Service`` is given the driver's path, so Selenium Manager never runs (it would download one).
* axe-core is the npm package installed by ``scripts/ensure-browser.sh`` under ``.cache/axe``; its
  ``axe.min.js`` is injected into each page checked (WebDriver's script evaluation is not bound by
  the page's Content-Security-Policy) and ``axe.run()`` is awaited with ``execute_async_script``.
* WebAuthn needs a secure context, and fido2 checks the origin: the browser talks to
  ``http://localhost:PORT`` (a secure context, RP id ``localhost``), never ``127.0.0.1``.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import os
import re
import secrets
import shutil
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e._support import LiveServer

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
AXE_JS = REPO / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
ENSURE_BROWSER = REPO / "scripts" / "ensure-browser.sh"
SCREENSHOTS = REPO / "docs" / "screenshots"
WINDOW = (1280, 1000)

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)

# axe impacts that fail a test (minor and moderate ones are reported, not failed).
BLOCKING_IMPACTS = frozenset({"serious", "critical"})

# Second-factor pages (allauth's names, pinned in DESIGN.md).
LOGIN = "/account/login/"
SIGNUP = "/account/signup/"
LOGOUT = "/account/logout/"
MFA_INDEX = "/account/2fa/"
TOTP_ACTIVATE = "/account/2fa/totp/activate/"
MFA_AUTHENTICATE = "/account/2fa/authenticate/"
WEBAUTHN_ADD = "/account/2fa/webauthn/add/"
WEBAUTHN_LIST = "/account/2fa/webauthn/"
RECOVERY_CODES = "/account/2fa/recovery-codes/"
REAUTHENTICATE = "/account/reauthenticate/"


def screenshots_enabled() -> bool:
    return os.environ.get("BASTION_SCREENSHOTS", "") not in ("", "0", "false", "no")


# ---------------------------------------------------------------------------------------------
# The browser and axe-core must be here (installed by scripts/ensure-browser.sh)


def _missing() -> list[str]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if not AXE_JS.is_file():
        missing.append(str(AXE_JS.relative_to(REPO)))
    return missing


def require_browser() -> None:
    """Install what is missing when we can (root + apt, npm); skip or, under CI=true, fail."""
    if _missing() and shutil.which("bash"):
        subprocess.run(
            ["bash", str(ENSURE_BROWSER)],
            cwd=REPO,
            capture_output=True,
            timeout=900,
            check=False,
        )
    missing = _missing()
    if not missing:
        return
    message = (
        f"browser tests need Debian's chromium and chromium-driver and axe-core; missing: "
        f"{', '.join(missing)}"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message + "; CI requires them", pytrace=False)
    pytest.skip(message + "; run `make test` as root (scripts/ensure-browser.sh) to install them")


# ---------------------------------------------------------------------------------------------
# TOTP (RFC 6238: SHA-1, 6 digits, 30 s), computed here from the secret the page shows

TOTP_PERIOD = 30


def totp_step(now: float | None = None) -> int:
    return int(time.time() if now is None else now) // TOTP_PERIOD


def totp_code(secret: str, step: int) -> str:
    key = base64.b32decode(secret.replace(" ", "").upper() + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def wait_for_step_after(step: int) -> int:
    """Sleep until the clock is past time step ``step`` (at most one period); the new step."""
    boundary = (step + 1) * TOTP_PERIOD
    delay = boundary - time.time()
    if delay > 0:
        time.sleep(delay + 0.3)
    return totp_step()


# ---------------------------------------------------------------------------------------------
# The outbox (Django's file backend: one file per connection, messages separated by dashes)

_SEPARATOR = re.compile(r"^-{79}$", re.MULTILINE)


def outbox_messages(outbox: Path) -> list[EmailMessage]:
    messages: list[EmailMessage] = []
    if not outbox.is_dir():
        return messages
    for path in sorted(outbox.iterdir(), key=lambda p: (p.stat().st_mtime, p.name)):
        if not path.is_file():
            continue
        for chunk in _SEPARATOR.split(path.read_text(errors="replace")):
            if chunk.strip():
                message = email.message_from_string(chunk.lstrip(), policy=email.policy.default)
                messages.append(message)  # type: ignore[arg-type]
    return messages


def message_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    return part.get_content() if part is not None else str(message.get_payload())


def mail_to(outbox: Path, address: str) -> list[EmailMessage]:
    return [m for m in outbox_messages(outbox) if address in str(m.get("To", ""))]


def wait_for_link(
    outbox: Path, address: str, pattern: str, *, timeout: float = 10.0
) -> tuple[str, EmailMessage]:
    """The first URL matching ``pattern`` in a message to ``address`` (waiting for it)."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        seen = []
        for message in mail_to(outbox, address):
            text = message_text(message)
            seen.append(f"{message.get('Subject')}: {text[:400]}")
            match = re.search(pattern, text)
            if match:
                return match.group(0), message
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no link matching {pattern!r} mailed to {address} in {outbox}; messages: {seen}"
            )
        time.sleep(0.2)


# ---------------------------------------------------------------------------------------------
# The browser


@dataclass
class AxeFinding:
    page: str
    url: str
    rule: str
    impact: str
    help: str
    targets: list[str]

    def __str__(self) -> str:
        return (
            f"[{self.impact}] {self.rule} on {self.page} ({self.url}): {self.help} {self.targets}"
        )


@dataclass
class Browser:
    """One Chromium (fresh profile) with helpers that speak bastion's account pages."""

    driver: Any  # selenium.webdriver.Chrome
    base_url: str
    profile_dir: Path
    lang: str = "en"
    findings: list[AxeFinding] = field(default_factory=list)
    audited: list[str] = field(default_factory=list)
    _axe_source: str | None = None

    # -- navigation ------------------------------------------------------------------------

    def go(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    @property
    def path(self) -> str:
        return urlsplit(self.driver.current_url).path

    @property
    def text(self) -> str:
        return str(self.driver.find_element("tag name", "body").text)

    def describe(self) -> str:
        """What a failure message should show: where the browser is and what it says."""
        try:
            return f"at {self.driver.current_url}: {self.text[:1500]!r}"
        except Exception as exc:  # noqa: BLE001 - a report must not raise
            return f"(page unreadable: {exc})"

    def find(self, css: str) -> Any:
        return self.driver.find_element("css selector", css)

    def find_all(self, css: str) -> list[Any]:
        return list(self.driver.find_elements("css selector", css))

    def exists(self, css: str) -> bool:
        return bool(self.find_all(css))

    def h1(self) -> str:
        found = self.find_all("main h1") or self.find_all("h1")
        return str(found[0].text).strip() if found else ""

    def html_lang(self) -> str:
        return str(self.find("html").get_attribute("lang") or "")

    def wait(self, condition: Any, *, timeout: float = 10.0, message: str = "") -> Any:
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(condition)
        except TimeoutException:
            raise AssertionError(f"{message or 'timed out'}; {self.describe()}") from None

    def wait_for_path(self, path: str, *, timeout: float = 10.0) -> None:
        self.wait(
            lambda _d: self.path == path,
            timeout=timeout,
            message=f"expected to reach {path}",
        )

    def navigates(self, action: Any, *, timeout: float = 15.0) -> None:
        """Run ``action`` (a click, a submit) and wait until a new document has loaded.

        The old document is marked with a random value; the new one is there once the mark is
        gone and it has finished loading. (Waiting for the old <html> element to go stale races
        with the navigation in Chromium: "Node ... does not belong to the document".)
        """
        from selenium.common.exceptions import WebDriverException

        mark = secrets.token_hex(8)
        self.driver.execute_script("window.__bastionDocument = arguments[0];", mark)
        action()

        def loaded(driver: Any) -> bool:
            try:
                return bool(
                    driver.execute_script(
                        "return window.__bastionDocument !== arguments[0]"
                        " && document.readyState === 'complete';",
                        mark,
                    )
                )
            except WebDriverException:  # the document is being replaced right now
                return False

        self.wait(loaded, timeout=timeout, message="the page did not change")

    # -- forms -----------------------------------------------------------------------------

    def field(self, name: str) -> Any:
        fields = [
            f for f in self.find_all(f"main [name='{name}']") or self.find_all(f"[name='{name}']")
        ]
        visible = [f for f in fields if f.is_displayed()]
        if not (visible or fields):
            raise AssertionError(f"no field named {name!r}; {self.describe()}")
        return (visible or fields)[0]

    def fill(self, **values: str) -> None:
        for name, value in values.items():
            element = self.field(name)
            element.clear()
            element.send_keys(value)

    def submit(self, name: str | None = None) -> None:
        """Submit the form holding field ``name`` (else the main form) by its submit button."""
        if name is not None:
            form = self.field(name).find_element("xpath", "./ancestor::form")
        else:
            forms = [f for f in self.find_all("main form") if f.is_displayed()]
            assert forms, f"no form; {self.describe()}"
            form = forms[0]
        buttons = [
            b
            for b in form.find_elements(
                "css selector", "button[type='submit'], button:not([type]), input[type='submit']"
            )
            if b.is_displayed()
        ]
        if buttons:
            self.navigates(buttons[0].click)
        else:
            self.navigates(form.submit)

    def field_errors(self) -> str:
        """Text of the visible error messages on the page (allauth's and ours)."""
        selectors = ".errorlist, [role='alert'], .error, .errors, .field-error, .message--error"
        texts = [e.text.strip() for e in self.find_all(selectors) if e.text.strip()]
        invalid = self.find_all("[aria-invalid='true']")
        return " | ".join(texts) + (" (aria-invalid field)" if invalid else "")

    def sign_out(self) -> None:
        buttons = self.find_all(f"form[action='{LOGOUT}'] button")
        if not buttons:
            self.go(LOGOUT)
            buttons = self.find_all(f"form[action='{LOGOUT}'] button")
        assert buttons, f"no sign-out form; {self.describe()}"
        self.navigates(buttons[-1].click)
        self.go("/")
        assert self.exists(f"a[href='{LOGIN}']"), f"still signed in; {self.describe()}"

    def sign_in_password(self, login: str, password: str) -> None:
        self.go(LOGIN)
        self.audit("login")
        self.fill(login=login, password=password)
        self.submit("password")

    def choose_language(self, code: str) -> None:
        """The site's language selector (a POST to /i18n/setlang/)."""
        from selenium.webdriver.support.ui import Select

        Select(self.find("#site-language")).select_by_value(code)
        button = self.find("form.language button[type='submit']")
        self.navigates(button.click)
        self.lang = code
        assert self.html_lang() == code, f"language {code} not applied; {self.describe()}"

    # -- axe-core --------------------------------------------------------------------------

    def audit(self, page: str) -> list[AxeFinding]:
        """Run axe-core on the current page; record serious and critical violations."""
        if self._axe_source is None:
            self._axe_source = AXE_JS.read_text()
        self.driver.execute_script(self._axe_source)
        result = self.driver.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            axe.run(document, {resultTypes: ['violations']})
              .then(r => done({violations: r.violations.map(v => ({
                  id: v.id, impact: v.impact, help: v.help,
                  targets: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))}))
              .catch(e => done({error: String(e)}));
            """
        )
        assert "error" not in result, f"axe.run failed on {page}: {result['error']}"
        label = f"{page} [{self.lang}]"
        self.audited.append(label)
        found = [
            AxeFinding(
                page=label,
                url=str(self.driver.current_url),
                rule=v["id"],
                impact=v["impact"] or "",
                help=v["help"],
                targets=v["targets"],
            )
            for v in result["violations"]
            if v["impact"] in BLOCKING_IMPACTS
        ]
        self.findings.extend(found)
        return found

    def assert_accessible(self) -> None:
        assert_accessible(self)

    # -- screenshots -----------------------------------------------------------------------

    def screenshot(self, name: str) -> Path | None:
        """``docs/screenshots/<lang>-<name>.png`` when BASTION_SCREENSHOTS is set; else nothing."""
        if not screenshots_enabled():
            return None
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        target = SCREENSHOTS / f"{self.lang}-{name}.png"
        # The whole page, not just the viewport, at a fixed width.
        metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {
                    "x": 0,
                    "y": 0,
                    "width": WINDOW[0],
                    "height": min(int(size["height"]), 3000),
                    "scale": 1,
                },
            },
        )
        target.write_bytes(base64.b64decode(shot["data"]))
        return target

    # -- WebAuthn (Chromium's virtual authenticator over the DevTools protocol) -------------

    def add_virtual_authenticator(self, transport: str = "usb") -> str:
        """A CTAP2 authenticator: "usb" is a security key, "internal" a platform passkey."""
        self.driver.execute_cdp_cmd("WebAuthn.enable", {"enableUI": False})
        answer = self.driver.execute_cdp_cmd(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": transport,
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                    "automaticPresenceSimulation": True,
                }
            },
        )
        return str(answer["authenticatorId"])

    def credentials(self, authenticator_id: str) -> list[dict[str, Any]]:
        answer = self.driver.execute_cdp_cmd(
            "WebAuthn.getCredentials", {"authenticatorId": authenticator_id}
        )
        return list(answer["credentials"])

    def console_errors(self) -> list[str]:
        try:
            logs = self.driver.get_log("browser")
        except Exception:  # noqa: BLE001 - not every driver keeps logs
            return []
        return [str(entry.get("message")) for entry in logs if entry.get("level") == "SEVERE"]

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile_dir, ignore_errors=True)


@dataclass
class Site:
    """A live server and what the browser tests need of it."""

    live: LiveServer

    @property
    def base_url(self) -> str:
        return self.live.base_url

    @property
    def outbox(self) -> Path:
        return self.live.data_dir / "outbox"

    def create_user(self, prefix: str = "user", *, exact: bool = False) -> tuple[str, str, str]:
        """A user made with ``bastion user create`` (e-mail verified): (username, email, password).

        The username is ``prefix`` and a random suffix, or ``prefix`` alone when ``exact``."""
        username = prefix if exact else f"{prefix}{secrets.token_hex(3)}"
        address = f"{username}@example.com"
        password = "pw-" + secrets.token_urlsafe(12)
        self.live.cli_ok(
            "user",
            "create",
            username,
            "--email",
            address,
            "--password-stdin",
            input=password + "\n",
        )
        return username, address, password


def assert_accessible(*browsers: Browser) -> None:
    """No serious or critical axe-core violation on any page these browsers checked."""
    findings = [finding for browser in browsers for finding in browser.findings]
    assert not findings, (
        f"axe-core: {len(findings)} serious/critical violation(s) on "
        f"{sorted({f.page for f in findings})}:\n" + "\n".join(map(str, findings))
    )


def start_browser(base_url: str, *, lang: str = "en") -> Browser:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="bastion-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile / 'user-data'}")
    options.add_argument(f"--lang={lang}")
    options.add_experimental_option("prefs", {"intl.accept_languages": lang})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Debian's driver, named explicitly: Selenium Manager (which downloads) never runs.
    service = Service(str(CHROMEDRIVER), log_output=str(profile / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return Browser(driver=driver, base_url=base_url, profile_dir=profile, lang=lang)


# ---------------------------------------------------------------------------------------------
# Pages of the publishing interface (issue 10)

TOKENS = "/account/tokens/"
TOKENS_NEW = "/account/tokens/new/"
MANAGE_PROJECTS = "/manage/projects/"
INVITATIONS = "/manage/invitations/"
TOKEN_LEAK = "/_/token-leak/"


def hide_text(browser: Browser, secret: str, replacement: str) -> int:
    """Replace ``secret`` in the page's fields and text (before a screenshot); how many places."""
    replaced, left = browser.driver.execute_script(
        """
        const [secret, replacement] = arguments;
        const swap = (text) => text.split(secret).join(replacement);
        let count = 0;
        for (const field of document.querySelectorAll('input, textarea')) {
          const attribute = field.getAttribute('value') || '';
          if (field.value.includes(secret) || attribute.includes(secret)) {
            field.value = swap(field.value);
            if (attribute) field.setAttribute('value', swap(attribute));
            count++;
          }
        }
        const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
          if (node.nodeValue.includes(secret)) {
            node.nodeValue = swap(node.nodeValue);
            count++;
          }
        }
        const fields = Array.from(document.querySelectorAll('input, textarea'), f => f.value);
        const left = document.documentElement.outerHTML.includes(secret)
          || fields.some(value => value.includes(secret));
        return [count, left];
        """,
        secret,
        replacement,
    )
    assert not left, f"the secret is still in the page; {browser.describe()}"
    return int(replaced)


def messages_text(browser: Browser) -> str:
    """The flash messages the page shows (``<ul class="messages">``)."""
    return " | ".join(e.text.strip() for e in browser.find_all("main .messages .message"))
