"""Two-factor sign-in over plain HTTP against a live ``bastion serve`` (SQLite and PostgreSQL):
what a script or a black-box test can drive through the pinned paths alone.

Password sign-in, TOTP enrolment from the secret shown as text, the second step, replays,
session cookies and security headers. Codes come from the live clock: the test runs in seconds,
well inside the ±1 step tolerance.
"""

from __future__ import annotations

import base64
import re
import secrets
import time

import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.twofactor.hotp import HOTP

from tests.e2e._support import LiveServer

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
SECRET = re.compile(r'id="totp-secret"[^>]*data-secret="([A-Z2-7]+)"')


def code_at(secret: str, step: int) -> str:
    return HOTP(base64.b32decode(secret), 6, hashes.SHA1()).generate(step).decode()


class Browser:
    """A cookie jar with CSRF: what a form-driving client does."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.session = requests.Session()
        self.session.trust_env = False

    def get(self, path: str) -> requests.Response:
        return self.session.get(self.server.url(path), allow_redirects=False, timeout=30)

    def post(self, path: str, data: dict[str, str], page: requests.Response | None = None):
        """Submit the form at ``path``, with the CSRF token of ``page`` (else a fresh GET)."""
        form = page if page is not None else self.session.get(self.server.url(path), timeout=30)
        token = CSRF.search(form.text)
        assert token, f"no CSRF token on {path}: {form.status_code}"
        return self.session.post(
            self.server.url(path),
            data={"csrfmiddlewaretoken": token.group(1), **data},
            headers={"Referer": self.server.url(path)},
            allow_redirects=False,
            timeout=30,
        )

    def sign_in(self, username: str, password: str) -> requests.Response:
        return self.post("/account/login/", {"login": username, "password": password})


def new_user(server: LiveServer) -> tuple[str, str]:
    username = "u" + secrets.token_hex(4)
    password = "pw " + secrets.token_urlsafe(16)
    server.cli_ok(
        "user", "create", username, "--email", f"{username}@example.com", "--password-stdin",
        input=password + "\n",
    )
    return username, password


def test_totp_enrolment_second_step_and_replay_over_http(server: LiveServer) -> None:
    username, password = new_user(server)
    browser = Browser(server)
    before = browser.get("/account/login/")
    assert before.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert "script-src 'self'" in before.headers["Content-Security-Policy"]
    assert before.headers["X-Frame-Options"] == "DENY"
    assert before.headers["X-Content-Type-Options"] == "nosniff"
    assert before.headers["Referrer-Policy"] == "same-origin"
    anonymous_session = browser.session.cookies.get("sessionid")

    signed_in = browser.sign_in(username, password)
    assert signed_in.status_code == 302
    cookie = signed_in.headers["Set-Cookie"]
    assert "sessionid=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert browser.session.cookies.get("sessionid") != anonymous_session  # a new session id
    # A user made by `bastion user create` enrols at the first sign-in: every page leads there.
    for path in ("/", "/account/history/", "/manage/projects/"):
        assert browser.get(path).headers["Location"] == "/account/2fa/", path

    assert browser.post("/account/reauthenticate/", {"password": password}).status_code == 302
    page = browser.get("/account/2fa/totp/activate/")
    assert page.status_code == 200
    secret = SECRET.search(page.text)
    assert secret, "the TOTP secret is not shown as text"
    step = int(time.time()) // 30
    # Submitted from the page that showed the secret: every GET of the form makes a new one.
    enrolled = browser.post(
        "/account/2fa/totp/activate/", {"code": code_at(secret.group(1), step)}, page=page
    )
    assert enrolled.status_code == 302, enrolled.text[:500]
    assert browser.get("/account/history/").status_code == 200

    # A second session: the enrolment code is refused, the next step's code accepted once.
    other = Browser(server)
    assert other.sign_in(username, password).headers["Location"] == "/account/2fa/authenticate/"
    refused = other.post("/account/2fa/authenticate/", {"code": code_at(secret.group(1), step)})
    assert refused.status_code == 200
    assert other.get("/account/history/").status_code == 302
    next_code = code_at(secret.group(1), step + 1)
    accepted = other.post("/account/2fa/authenticate/", {"code": next_code})
    assert accepted.status_code == 302
    assert other.get("/account/history/").status_code == 200

    third = Browser(server)
    third.sign_in(username, password)
    replay = third.post("/account/2fa/authenticate/", {"code": next_code})
    assert replay.status_code == 200
    assert third.get("/account/history/").status_code == 302
