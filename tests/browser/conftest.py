"""Fixtures of the browser suite: live ``bastion serve`` instances on ``http://localhost`` and a
fresh headless Chromium per test.

* ``site`` is the default configuration (BASTION_REQUIRE_2FA on, passkey sign-in off);
  ``passkey_site`` has BASTION_PASSKEY_LOGIN=true. Each runs two gunicorn workers (so a code
  remembered by one process only would be accepted by the other), with its own data directory;
  mail lands in ``<data>/outbox``.
* The browser browses ``http://localhost:PORT``, which is also BASTION_BASE_URL: WebAuthn needs a
  secure context and fido2 verifies the origin (``localhost`` is both; ``127.0.0.1`` is not
  accepted by fido2's origin check).
* A failing test gets the page it was on, the axe findings so far, the browser console and the
  end of the server log in its report, and a screenshot under ``$TMPDIR/bastion-browser-failures``.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.browser._support import Browser, Site, require_browser, start_browser
from tests.e2e._support import SERVER_STOP_GRACE, LiveServer, clean_environ, serve
from tests.processes import free_port, stop_process_group

BROWSER_DIR = Path(__file__).parent
HEALTH_TIMEOUT = 30.0
FAILURE_SHOTS = Path(tempfile.gettempdir()) / "bastion-browser-failures"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives Debian's Chromium against a live server")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if BROWSER_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    browser = funcargs.get("browser")
    if isinstance(browser, Browser):
        report.sections.append(("browser: current page", browser.describe()))
        if browser.findings:
            report.sections.append(
                ("browser: axe findings so far", "\n".join(map(str, browser.findings)))
            )
        errors = browser.console_errors()
        if errors:
            report.sections.append(("browser: console errors", "\n".join(errors[-20:])))
        with contextlib.suppress(Exception):
            FAILURE_SHOTS.mkdir(parents=True, exist_ok=True)
            shot = FAILURE_SHOTS / f"{item.name}.png"
            browser.driver.save_screenshot(str(shot))
            report.sections.append(("browser: screenshot", str(shot)))
    for name in ("site", "passkey_site"):
        server = funcargs.get(name)
        if isinstance(server, Site):
            report.sections.append(
                (f"bastion server log ({name}, tail)", server.live.server_log()[-5000:])
            )


@contextlib.contextmanager
def _site(
    tmp_path_factory: pytest.TempPathFactory, name: str, extra_env: dict[str, str]
) -> Iterator[Site]:
    require_browser()  # no server started for nothing when the browser is missing
    data_dir = tmp_path_factory.mktemp(f"bastion-browser-{name}")
    port = free_port()
    base_url = f"http://localhost:{port}"
    env = clean_environ()
    env.update(
        {
            "BASTION_DATA_DIR": str(data_dir),
            "BASTION_BASE_URL": base_url,
            "BASTION_SECRET_KEY": "browser-" + secrets.token_urlsafe(40),
            **extra_env,
        }
    )
    live = LiveServer(
        backend=f"sqlite/{name}",
        base_url=base_url,
        data_dir=data_dir,
        env=env,
        stderr_path=data_dir / "server.stderr.log",
    )
    process = serve(live, workers=2, timeout=HEALTH_TIMEOUT)
    try:
        yield Site(live=live)
    finally:
        live.close()
        stop_process_group(process, grace=SERVER_STOP_GRACE)


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with _site(tmp_path_factory, "default", {}) as live_site:
        yield live_site


@pytest.fixture(scope="session")
def passkey_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with _site(tmp_path_factory, "passkey", {"BASTION_PASSKEY_LOGIN": "true"}) as live_site:
        yield live_site


@pytest.fixture
def open_browser() -> Iterator[Callable[[Site], Browser]]:
    """Start a fresh Chromium (new profile) on a site; all are closed after the test."""
    require_browser()
    started: list[Browser] = []

    def start(on: Site, lang: str = "en") -> Browser:
        browser = start_browser(on.base_url, lang=lang)
        started.append(browser)
        return browser

    yield start
    for browser in started:
        browser.quit()


@pytest.fixture
def browser(open_browser: Callable[[Site], Browser], site: Site) -> Browser:
    return open_browser(site)
