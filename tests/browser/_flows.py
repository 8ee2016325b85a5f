"""Account flows the browser tests share: each step asserts where it lands, with the page text."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.browser._support import (
    LOGIN,
    MFA_AUTHENTICATE,
    MFA_INDEX,
    REAUTHENTICATE,
    RECOVERY_CODES,
    SIGNUP,
    TOKENS_NEW,
    TOTP_ACTIVATE,
    WEBAUTHN_ADD,
    Browser,
    totp_code,
    totp_step,
    wait_for_link,
)

_SECRET_TEXT = re.compile(r"\b[A-Z2-7]{16,}\b")
_OTPAUTH = re.compile(r"otpauth://totp/[^\"'<>\s]*[?&]secret=([A-Z2-7]+)", re.IGNORECASE)
_RECOVERY_CODE = re.compile(r"^[0-9a-zA-Z]{6,16}$")


@dataclass
class Account:
    username: str
    email: str
    password: str
    totp_secret: str = ""
    last_step: int = -1  # the last TOTP time step the server accepted for this user
    recovery_codes: list[str] = field(default_factory=list)


def sign_up(browser: Browser, outbox_dir: object, *, username: str | None = None) -> Account:
    """Sign up at /account/signup/ and confirm the address with the link from the outbox."""
    from pathlib import Path

    outbox = Path(str(outbox_dir))
    name = username or f"signup{secrets.token_hex(3)}"
    account = Account(name, f"{name}@example.com", "pw-" + secrets.token_urlsafe(12))
    browser.go(SIGNUP)
    assert browser.exists("[name='password1']"), f"no sign-up form; {browser.describe()}"
    browser.audit("signup")
    browser.fill(
        email=account.email,
        username=account.username,
        password1=account.password,
        password2=account.password,
    )
    browser.submit("password1")
    assert browser.path != SIGNUP, (
        f"sign-up refused: {browser.field_errors()}; {browser.describe()}"
    )
    browser.audit("verification sent")

    link, _message = wait_for_link(
        outbox, account.email, re.escape(browser.base_url) + r"/account/confirm-email/[^\s<>\"]+"
    )
    browser.driver.get(link)
    browser.audit("confirm e-mail")
    if browser.exists("main form[method='post'] button, main form[method='post'] [type=submit]"):
        browser.submit()
    return account


def sign_in(browser: Browser, account: Account) -> None:
    """Password step; lands on the second step, the 2FA set-up, or past both."""
    browser.sign_in_password(account.username, account.password)
    assert browser.path != LOGIN, (
        f"password sign-in refused: {browser.field_errors()}; {browser.describe()}"
    )


def reauthenticate_if_asked(browser: Browser, account: Account) -> None:
    if browser.path.startswith(REAUTHENTICATE) or (
        browser.exists("[name='password']") and not browser.exists("[name='code']")
    ):
        browser.audit("reauthenticate")
        browser.fill(password=account.password)
        browser.submit("password")


def read_totp_secret(browser: Browser) -> str:
    """The secret the activation page shows as text (bastion: #totp-secret[data-secret])."""
    for css, attribute in (("#totp-secret", "data-secret"), ("#authenticator_secret", "value")):
        for element in browser.find_all(css):
            value = (element.get_attribute(attribute) or element.text or "").strip()
            if value:
                return value.replace(" ", "").upper()
    source = browser.driver.page_source
    match = _OTPAUTH.search(source)
    if match:
        return match.group(1).upper()
    match = _SECRET_TEXT.search(browser.text.replace(" ", ""))
    assert match, f"no TOTP secret shown as text; {browser.describe()}"
    return match.group(0)


def read_recovery_codes(browser: Browser) -> list[str]:
    """The unused recovery codes the page shows (bastion's list, or allauth's textarea)."""
    listed = [e.text.strip() for e in browser.find_all(".recovery-codes code")]
    if listed:
        return listed
    for element in browser.find_all("#recovery_codes, main textarea"):
        text = element.get_attribute("value") or element.text or ""
        codes = [c for c in text.split() if _RECOVERY_CODE.match(c)]
        if codes:
            return codes
    codes = [e.text.strip() for e in browser.find_all("main code")]
    codes = list(dict.fromkeys(c for c in codes if _RECOVERY_CODE.match(c)))
    assert codes, f"no recovery codes shown; {browser.describe()}"
    return codes


def enrol_totp(
    browser: Browser, account: Account, *, note: Callable[[str], object] | None = None
) -> None:
    """From a signed-in session: activate TOTP (after the password again), save the codes.

    ``note(page)`` is called on the activation and recovery-code pages (default: axe-core)."""
    note = note or browser.audit
    browser.go(TOTP_ACTIVATE)
    reauthenticate_if_asked(browser, account)
    if browser.path != TOTP_ACTIVATE:
        browser.go(TOTP_ACTIVATE)
    assert browser.path == TOTP_ACTIVATE and browser.exists("[name='code']"), (
        f"no TOTP activation form; {browser.describe()}"
    )
    assert browser.exists("main svg, main img[src^='data:image/svg']"), (
        f"no QR code on the activation page; {browser.describe()}"
    )
    note("totp-activate")
    account.totp_secret = read_totp_secret(browser)
    step = totp_step()
    browser.fill(code=totp_code(account.totp_secret, step))
    browser.submit("code")
    assert browser.path != TOTP_ACTIVATE, (
        f"enrolment code refused: {browser.field_errors()}; {browser.describe()}"
    )
    account.last_step = step
    # The first second factor generates the recovery codes, shown once.
    if not browser.path.startswith(RECOVERY_CODES):
        browser.go(RECOVERY_CODES)
    note("recovery-codes")
    account.recovery_codes = read_recovery_codes(browser)


def add_security_key(
    browser: Browser, account: Account, *, name: str, passwordless: bool = False
) -> None:
    """From a signed-in session: /account/2fa/webauthn/add/ with the virtual authenticator."""
    path = WEBAUTHN_ADD + ("?passwordless" if passwordless else "")
    browser.go(path)
    reauthenticate_if_asked(browser, account)
    if browser.path != WEBAUTHN_ADD:
        browser.go(path)
    assert browser.exists("#mfa_webauthn_add"), f"no 'add security key' page; {browser.describe()}"
    browser.audit("webauthn add")
    if browser.exists("[name='name']"):
        browser.fill(name=name)
    boxes = browser.find_all("[name='passwordless']")
    if passwordless:
        assert boxes, f"no passwordless (passkey) option; {browser.describe()}"
        if not boxes[0].is_selected():
            boxes[0].click()
    elif boxes and boxes[0].is_selected():
        boxes[0].click()
    browser.navigates(browser.find("#mfa_webauthn_add").click, timeout=20)
    assert browser.path != WEBAUTHN_ADD, (
        f"the security key was not added: {browser.field_errors()}; {browser.describe()}; "
        f"console: {browser.console_errors()}"
    )


def second_step_code(browser: Browser, code: str) -> None:
    """Type ``code`` at the second step and submit it."""
    assert browser.path == MFA_AUTHENTICATE, f"not at the second step; {browser.describe()}"
    browser.fill(code=code)
    browser.submit("code")


def assert_signed_in(browser: Browser, account: Account) -> None:
    """Past every step: the home page, not redirected to the 2FA set-up, with a sign-out button."""
    browser.go("/")
    assert browser.path == "/", f"signed-in user sent elsewhere; {browser.describe()}"
    assert account.username in browser.text, (
        f"not signed in as {account.username}; {browser.describe()}"
    )


def cancel_second_step(browser: Browser) -> None:
    """The second step's "Cancel": ends the half-done sign-in (a POST to the sign-out view)."""
    buttons = [
        b
        for b in browser.find_all(
            "button[form='logout-from-stage'], main form[action='/account/logout/'] button"
        )
        if b.is_displayed()
    ]
    assert buttons, f"no way to cancel the second step; {browser.describe()}"
    browser.navigates(buttons[0].click)


def assert_refused_at_second_step(browser: Browser, what: str) -> None:
    """Still at the second step with an error; cancelling leaves the visitor signed out."""
    assert browser.path == MFA_AUTHENTICATE, f"{what} was accepted; {browser.describe()}"
    assert browser.field_errors(), f"{what} refused without an error shown; {browser.describe()}"
    cancel_second_step(browser)
    browser.go(MFA_INDEX)
    assert browser.path == LOGIN, f"{what}: signed in after all; {browser.describe()}"


def create_token_in_ui(
    browser: Browser,
    account: Account,
    name: str,
    *,
    projects: tuple[str, ...] = (),
    note: Callable[[str], object] | None = None,
) -> str:
    """From a signed-in session with a second factor: make an API token at /account/tokens/new/
    (reauthenticating when asked), scoped to ``projects`` (normalized names) or the whole
    account. Returns the token the next page shows once; the browser stays on that page.

    ``note(page)`` is called on the form ("token-new") and on the page showing the token
    ("token-created"); default: axe-core."""
    note = note or browser.audit
    browser.go(TOKENS_NEW)
    reauthenticate_if_asked(browser, account)
    if browser.path != TOKENS_NEW:
        browser.go(TOKENS_NEW)
    assert browser.path == TOKENS_NEW and browser.exists("main [name='name']"), (
        f"no token creation form; {browser.describe()}"
    )
    note("token-new")
    browser.fill(name=name)
    scope = "projects" if projects else "account"
    browser.find(f"main input[name='scope'][value='{scope}']").click()
    for project in projects:
        box = browser.find(f"main input[name='projects'][value='{project}']")
        if not box.is_selected():
            box.click()
    browser.submit("name")
    if not browser.exists("#token-value") and browser.path.startswith(REAUTHENTICATE):
        # The reauthentication ran out between the form and its POST: allauth asks again,
        # then replays the POST (the answer shows the token, at the reauthentication URL).
        reauthenticate_if_asked(browser, account)
    fields = browser.find_all("#token-value")
    assert fields, (
        f"no token shown after creating {name!r}: {browser.field_errors()}; {browser.describe()}"
    )
    secret = str(fields[0].get_attribute("value") or "").strip()
    assert secret, f"an empty token field; {browser.describe()}"
    note("token-created")
    return secret
