"""The breached-password check (BASTION_PWNED_PASSWORDS_URL) against a local range server.

The server answers like Have I Been Pwned's range API (``SUFFIX:COUNT`` lines, padding entries
with count 0) and records what it was asked, so the tests can show that only the 5-character
prefix of the hash ever leaves bastion.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.contrib.auth import password_validation
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import override_settings

from bastion.accounts.errors import InvalidAccountData
from bastion.accounts.models import User
from bastion.accounts.passwords import (
    PwnedPasswordValidator,
    RangeAnswerError,
    breach_count,
    split_hash,
)
from bastion.accounts.services import create_user
from bastion.actors import Actor
from bastion.cli import main
from tests.integration.accounts.conftest import verified_user

pytestmark = pytest.mark.django_db

BREACHED = "correct horse battery staple 1"  # the server says: seen 2341 times
BREACHED_COUNT = 2341
SAFE = "a long enough passphrase 42"  # listed only as a padding entry (count 0)
OTHER_SAFE = "another unbreached passphrase 7"


def sha1(password: str) -> str:
    return hashlib.sha1(password.encode()).hexdigest().upper()


class RangeServer:
    """A k-anonymity range API on 127.0.0.1: ``GET /range/<PREFIX>``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.counts = {sha1(BREACHED): BREACHED_COUNT, sha1(SAFE): 0}
        self.garbage = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.requests.append((self.path, dict(self.headers.items())))
                prefix = self.path.rsplit("/", 1)[-1]
                if server.garbage:
                    body = b"<html>Service Unavailable</html>"
                else:
                    lines = [
                        f"{full[5:].lower() if i % 2 else full[5:]}:{count}"  # any case
                        for i, (full, count) in enumerate(server.counts.items())
                        if full.startswith(prefix)
                    ]
                    # padding: unrelated suffixes with count 0
                    lines += [f"{hashlib.sha1(str(n).encode()).hexdigest()[5:]}:0" for n in (1, 2)]
                    body = "\r\n".join(lines).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/range/"

    def __enter__(self) -> RangeServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def with_settings(**changes: object) -> override_settings:
    return override_settings(BASTION=dataclasses.replace(settings.BASTION, **changes))


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """The local servers are reached directly, whatever proxy the machine configures."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


@pytest.fixture
def range_server() -> Iterator[RangeServer]:
    with RangeServer() as server, with_settings(pwned_passwords_url=server.url):
        yield server


@pytest.fixture
def carol(db) -> User:
    return verified_user("carol", SAFE)


def assert_only_prefixes_sent(server: RangeServer, *passwords: str) -> None:
    assert server.requests
    for path, headers in server.requests:
        assert re.fullmatch(r"/range/[0-9A-F]{5}", path), path
        assert headers.get("Add-Padding") == "true"
        sent = (path + repr(headers)).upper()
        for password in passwords:
            assert sha1(password)[5:] not in sent and password.upper() not in sent


def password_errors(response) -> list[str]:
    form = response.context["form"]
    return [str(m) for field in ("password1", "password2") for m in form.errors.get(field, [])]


# --- the pure parts ----------------------------------------------------------------------------


def test_split_hash_is_uppercase_sha1_5_plus_35():
    prefix, suffix = split_hash("password")
    assert prefix + suffix == "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8"
    assert (len(prefix), len(suffix)) == (5, 35)


def test_breach_count_finds_the_suffix_case_insensitively():
    answer = (
        "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n1E4C9B93F3F0682250B6CF8331B7EE68FD8:3303003\r\n"
    )
    assert breach_count(answer, expected_suffix="1E4C9B93F3F0682250B6CF8331B7EE68FD8") == 3303003
    assert breach_count(answer.lower(), expected_suffix="1e4c9b93f3f0682250b6cf8331b7ee68fd8") == (
        3303003
    )
    assert breach_count(answer, expected_suffix="F" * 35) == 0
    assert breach_count("", expected_suffix="F" * 35) == 0


def test_padding_entries_never_count():
    answer = "1E4C9B93F3F0682250B6CF8331B7EE68FD8:0\n0018A45C4D1DEF81644B54AB7F969B88D65:0\n"
    assert breach_count(answer, expected_suffix="1E4C9B93F3F0682250B6CF8331B7EE68FD8") == 0


@pytest.mark.parametrize(
    "answer",
    [
        "<html>Service Unavailable</html>",
        "1E4C9B93F3F0682250B6CF8331B7EE68FD8",  # no count
        "1E4C9B93F3F0682250B6CF8331B7EE68FD:3",  # 34 chars
        "1E4C9B93F3F0682250B6CF8331B7EE68FDZ:3",  # not hex
        "1E4C9B93F3F0682250B6CF8331B7EE68FD8:-1",
        "1E4C9B93F3F0682250B6CF8331B7EE68FD8:many",
    ],
)
def test_garbage_answers_are_errors_not_verdicts(answer):
    with pytest.raises(RangeAnswerError):
        breach_count(answer, expected_suffix="1E4C9B93F3F0682250B6CF8331B7EE68FD8")


def test_the_validator_is_configured_and_off_by_default():
    assert settings.BASTION.pwned_passwords_url is None
    names = [type(v).__name__ for v in password_validation.get_default_password_validators()]
    assert "PwnedPasswordValidator" in names
    with RangeServer() as server:
        password_validation.validate_password(BREACHED)  # URL unset: accepted, nothing asked
        assert server.requests == []


# --- against the range server --------------------------------------------------------------------


def test_breached_password_is_refused_with_its_count(range_server):
    with pytest.raises(ValidationError) as caught:
        PwnedPasswordValidator().validate(BREACHED)
    assert caught.value.error_list[0].code == "password_breached"
    assert caught.value.messages == [
        f"This password has appeared in a data breach {BREACHED_COUNT} times; choose another."
    ]
    PwnedPasswordValidator().validate(SAFE)  # present only as padding (count 0): accepted
    PwnedPasswordValidator().validate(OTHER_SAFE)
    assert_only_prefixes_sent(range_server, BREACHED, SAFE, OTHER_SAFE)
    assert [path for path, _ in range_server.requests] == [
        "/range/" + sha1(p)[:5] for p in (BREACHED, SAFE, OTHER_SAFE)
    ]


def test_signup_refuses_a_breached_password_and_accepts_a_safe_one(client, range_server):
    form = {"email": "dave@example.com", "username": "dave"}
    response = client.post(
        "/account/signup/", {**form, "password1": BREACHED, "password2": BREACHED}
    )
    assert response.status_code == 200
    assert any("data breach" in message for message in password_errors(response))
    assert not User.objects.filter(username="dave").exists()

    response = client.post("/account/signup/", {**form, "password1": SAFE, "password2": SAFE})
    assert response.status_code == 302, password_errors(response)
    assert User.objects.get(username="dave").check_password(SAFE)
    assert_only_prefixes_sent(range_server, BREACHED, SAFE)


def test_password_change_refuses_a_breached_password(client, carol, range_server):
    with with_settings(pwned_passwords_url=range_server.url, require_2fa=False):
        client.force_login(carol)
        response = client.post(
            "/account/password/change/",
            {"oldpassword": SAFE, "password1": BREACHED, "password2": BREACHED},
        )
        assert response.status_code == 200
        assert any("data breach" in message for message in password_errors(response))
        carol.refresh_from_db()
        assert carol.check_password(SAFE)

        response = client.post(
            "/account/password/change/",
            {"oldpassword": SAFE, "password1": OTHER_SAFE, "password2": OTHER_SAFE},
        )
        assert response.status_code == 302, password_errors(response)
        carol.refresh_from_db()
        assert carol.check_password(OTHER_SAFE)
    assert_only_prefixes_sent(range_server, BREACHED, OTHER_SAFE, SAFE)


def test_password_reset_refuses_a_breached_password(client, carol, range_server):
    response = client.post("/account/password/reset/", {"email": "carol@example.com"})
    assert response.status_code == 302
    (message,) = mail.outbox
    link = re.search(r"https?://[^/\s]+(/account/password/reset/key/\S+/)", message.body)
    assert link, message.body
    response = client.get(link.group(1))
    assert response.status_code == 302  # allauth moves the key into the session
    set_password_url = response["Location"]

    response = client.post(set_password_url, {"password1": BREACHED, "password2": BREACHED})
    assert response.status_code == 200
    assert any("data breach" in message for message in password_errors(response))
    carol.refresh_from_db()
    assert carol.check_password(SAFE)

    response = client.post(set_password_url, {"password1": OTHER_SAFE, "password2": OTHER_SAFE})
    assert response.status_code == 302, password_errors(response)
    carol.refresh_from_db()
    assert carol.check_password(OTHER_SAFE)
    assert_only_prefixes_sent(range_server, BREACHED, OTHER_SAFE)


def test_user_create_refuses_a_breached_password(range_server, capsys, monkeypatch):
    with pytest.raises(InvalidAccountData, match="data breach"):
        create_user(
            actor=Actor.operator(), username="erin", email="erin@example.com", password=BREACHED
        )
    monkeypatch.setattr("sys.stdin", io.StringIO(BREACHED + "\n"))
    code = main(["user", "create", "erin", "--email", "erin@example.com", "--password-stdin"])
    _out, err = capsys.readouterr()
    assert code != 0 and "data breach" in err and err.count("\n") == 1
    assert not User.objects.filter(username="erin").exists()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_service_fails_open_and_logs_no_hash(caplog):
    url = f"http://127.0.0.1:{_closed_port()}/range/"
    with with_settings(pwned_passwords_url=url), caplog.at_level(logging.WARNING):
        password_validation.validate_password(BREACHED)  # accepted
    assert "breached-password check skipped" in caplog.text
    assert sha1(BREACHED)[5:] not in caplog.text.upper() and BREACHED not in caplog.text


def test_garbage_answer_fails_open_and_logs(range_server, caplog):
    range_server.garbage = True
    with caplog.at_level(logging.WARNING):
        PwnedPasswordValidator().validate(BREACHED)  # accepted
    assert "breached-password check skipped" in caplog.text
    assert sha1(BREACHED)[5:] not in caplog.text.upper()


def test_a_server_that_does_not_speak_http_fails_open(caplog):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def answer_nonsense() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(b"NONSENSE\r\n\r\n")

        thread = threading.Thread(target=answer_nonsense, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/range/"
        with with_settings(pwned_passwords_url=url), caplog.at_level(logging.WARNING):
            PwnedPasswordValidator().validate(BREACHED)  # accepted
        thread.join(timeout=5)
    assert "breached-password check skipped" in caplog.text
