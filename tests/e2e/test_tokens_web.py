"""API tokens through the web interface and leaked-token reports, against a live ``bastion serve``.

* On the session servers (SQLite and PostgreSQL): a user enrols a TOTP app, creates a token at
  ``/account/tokens/new/`` (after reauthenticating), ``twine upload`` works with it, the list
  shows where it was last used, and once revoked in the page twine is refused. The notice is in
  the outbox, without the token.
* On a server of this module's own, started with BASTION_LEAK_REPORT_SECRET: a leak report with
  the wrong secret is 401, with the right one 204, and the token is dead and its owner told.
"""

from __future__ import annotations

import contextlib
import email
import json
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e._support import (
    SERVER_STOP_GRACE,
    LiveServer,
    clean_environ,
    describe,
    output_of,
    serve,
)
from tests.e2e.test_accounts_http import SECRET, Browser, code_at, new_user
from tests.processes import free_port, stop_process_group
from tests.unit.core.builders import make_wheel

TOKEN_FIELD = re.compile(r'id="token-value"[^>]*value="(bastion-[A-Za-z0-9_\-]+)"')
REVOKE = re.compile(r'action="(/account/tokens/[0-9a-f-]{36}/revoke/)"')
LEAK_SECRET = "leak-" + secrets.token_urlsafe(24)


def outbox(server: LiveServer) -> list[str]:
    """Every message the server wrote to its file outbox: To, Subject and the text parts."""
    bodies: list[str] = []
    folder = server.data_dir / "outbox"
    for path in sorted(folder.glob("*")) if folder.exists() else []:
        for raw in path.read_bytes().split(b"\n" + b"-" * 79 + b"\n"):
            if not raw.strip():
                continue
            message = email.message_from_bytes(raw.strip())
            text = [f"To: {message['To']}", f"Subject: {message['Subject']}"]
            for part in message.walk():
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    text.append(payload.decode(part.get_content_charset() or "utf-8"))
            bodies.append("\n".join(text))
    return bodies


def enrolled_browser(server: LiveServer) -> tuple[Browser, str, str]:
    """A new user signed in with a TOTP app just set up (which also reauthenticated them)."""
    username, password = new_user(server)
    browser = Browser(server)
    assert browser.sign_in(username, password).status_code == 302
    assert browser.post("/account/reauthenticate/", {"password": password}).status_code == 302
    page = browser.get("/account/2fa/totp/activate/")
    secret = SECRET.search(page.text)
    assert secret, page.text[:500]
    step = int(time.time()) // 30
    done = browser.post(
        "/account/2fa/totp/activate/", {"code": code_at(secret.group(1), step)}, page=page
    )
    assert done.status_code == 302, done.text[:500]
    return browser, username, password


def create_token_in_the_page(browser: Browser, password: str, name: str) -> str:
    form = browser.get("/account/tokens/new/")
    if form.status_code == 302:  # the reauthentication of the enrolment has run out
        assert form.headers["Location"].startswith("/account/reauthenticate/")
        browser.post("/account/reauthenticate/", {"password": password})
        form = browser.get("/account/tokens/new/")
    assert form.status_code == 200, form.text[:500]
    shown = browser.post("/account/tokens/new/", {"name": name, "scope": "account"}, page=form)
    assert shown.status_code == 200, shown.text[:800]
    assert "no-store" in shown.headers["Cache-Control"]
    match = TOKEN_FIELD.search(shown.text)
    assert match, "the new token is not shown"
    return match.group(1)


def test_a_token_made_in_the_page_uploads_with_twine_until_revoked(
    server: LiveServer, tmp_path: Path
) -> None:
    browser, username, password = enrolled_browser(server)
    token = create_token_in_the_page(browser, password, "e2e-web")
    project = f"e2e-web-token-{server.backend}"

    server.twine_ok(make_wheel(tmp_path, name=project, version="1.0"), token=token)

    listing = browser.get("/account/tokens/")
    assert listing.status_code == 200
    assert "e2e-web" in listing.text and "from 127.0.0.0/24" in listing.text
    assert token not in listing.text
    mails = [m for m in outbox(server) if "An API token was created" in m and username in m]
    assert mails and all(token not in m for m in mails)

    revoke = REVOKE.search(listing.text)
    assert revoke
    assert browser.post(revoke.group(1), {}, page=listing).status_code == 302
    after = browser.get("/account/tokens/").text
    assert "was revoked" in after and revoke.group(1) not in after

    refused = server.twine(make_wheel(tmp_path, name=project, version="2.0"), token=token)
    assert refused.returncode != 0, describe(refused)
    assert "403" in output_of(refused)


def test_the_leak_endpoint_does_not_exist_without_a_secret(server: LiveServer) -> None:
    response = server.http.post(
        server.url("/_/token-leak/"), json=[{"token": server.token}], timeout=30
    )
    assert response.status_code == 404


@pytest.fixture(scope="module")
def leak_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A SQLite server of this module's own, with BASTION_LEAK_REPORT_SECRET set."""
    with contextlib.ExitStack() as cleanup:
        data_dir = tmp_path_factory.mktemp("bastion-leak")
        port = free_port()
        env = clean_environ()
        env.update(
            {
                "BASTION_DATA_DIR": str(data_dir),
                "BASTION_BASE_URL": f"http://127.0.0.1:{port}",
                "BASTION_LEAK_REPORT_SECRET": LEAK_SECRET,
            }
        )
        live = LiveServer(
            backend="sqlite-leak",
            base_url=f"http://127.0.0.1:{port}",
            data_dir=data_dir,
            env=env,
            stderr_path=data_dir / "server.stderr.log",
        )
        process = serve(live, workers=1, timeout=30)
        cleanup.callback(stop_process_group, process, grace=SERVER_STOP_GRACE)
        cleanup.callback(live.close)
        live.cli_ok("user", "create", "lena", "--email", "lena@example.com")
        live.token = live.cli_ok("token", "create", "lena", "--name", "lena-ci")
        yield live


def test_a_leak_report_kills_the_token_and_tells_its_owner(
    leak_server: LiveServer, tmp_path: Path
) -> None:
    server = leak_server
    server.twine_ok(make_wheel(tmp_path, name="e2e-leaky", version="1.0"))
    found_at = "https://github.com/lena/e2e-leaky/blob/main/ci.yml"
    body = json.dumps(
        [{"token": server.token, "type": "bastion_api_token", "url": found_at, "source": "github"}]
    )

    def post(secret: str):
        return server.http.post(
            server.url("/_/token-leak/"),
            data=body,
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
            timeout=30,
        )

    wrong = post("not-the-secret")
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    server.twine_ok(make_wheel(tmp_path, name="e2e-leaky", version="1.1"))  # still alive

    accepted = post(LEAK_SECRET)
    assert accepted.status_code == 204 and accepted.content == b""
    refused = server.twine(make_wheel(tmp_path, name="e2e-leaky", version="1.2"))
    assert refused.returncode != 0 and "403" in output_of(refused), describe(refused)

    notices = [m for m in outbox(server) if found_at in m]
    assert len(notices) == 1 and "lena-ci" in notices[0]
    assert server.token not in notices[0]

    again = post(LEAK_SECRET)  # the same report again: nothing left to match, same answer
    assert again.status_code == 204 and again.content == b""
