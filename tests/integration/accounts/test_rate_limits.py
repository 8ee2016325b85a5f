"""Rate limits (issue 9 §8): sign-in, second step, password reset and sign-up, per account and
per client address, answered with 429 and Retry-After, counted in the shared cache.

The limits are the configured ones (settings.ACCOUNT_RATE_LIMITS): each test reads its allowance
from there, so tightening a limit keeps the tests meaningful. Two server processes sharing one
database: tests/e2e/test_account_rate_limits.py.
"""

from __future__ import annotations

import math

import pytest
from allauth.core.internal.ratelimit import get_rates
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.conf import settings
from django.test import RequestFactory

from bastion.accounts.models import User
from bastion.accounts.views import DEFAULT_RETRY_AFTER, rate_limited
from bastion.audit.models import Event
from tests.integration.accounts.conftest import verified_user

pytestmark = pytest.mark.django_db

PASSWORD = "a long enough passphrase 42"


def allowance(action: str, per: str, app: str = "allauth.account") -> int:
    """How many attempts the configured limit ``action`` allows ``per`` ip/key/user."""
    (rate,) = [r for r in get_rates(app=app, action=action) if r.per == per]
    return rate.amount


def window(*actions: str, app: str = "allauth.account") -> int:
    """The Retry-After promised for a view guarded by ``actions``: their longest window."""
    return math.ceil(max(r.duration for a in actions for r in get_rates(app=app, action=a)))


def assert_too_many(response, *, retry_after: int) -> None:
    assert response.status_code == 429, response.status_code
    assert response["Retry-After"] == str(retry_after)


@pytest.fixture
def carol(db) -> User:
    return verified_user("carol", PASSWORD)


def test_limits_live_in_a_shared_cache_not_process_memory():
    backend = settings.CACHES["default"]["BACKEND"]
    assert backend in {
        "django.core.cache.backends.db.DatabaseCache",
        "django.core.cache.backends.redis.RedisCache",
    }
    for action in ("login", "login_failed", "signup", "reset_password"):
        assert get_rates(app="allauth.account", action=action), action


# --- sign-in ------------------------------------------------------------------------------------


def test_failed_passwords_for_one_account_end_in_429_from_any_address(client, carol):
    for attempt in range(allowance("login_failed", "key")):
        response = client.post(
            "/account/login/",
            {"login": "carol", "password": "wrong"},
            REMOTE_ADDR=f"192.0.2.{attempt + 1}",  # a new address each time: the account counts
        )
        assert response.status_code == 200
    response = client.post(
        "/account/login/", {"login": "carol", "password": "wrong"}, REMOTE_ADDR="198.51.100.1"
    )
    assert_too_many(response, retry_after=window("login", "login_failed"))
    # Until the window passes, even the right password is refused for that account ...
    response = client.post(
        "/account/login/", {"login": "carol", "password": PASSWORD}, REMOTE_ADDR="198.51.100.2"
    )
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    # refused from inside the form: the audit event is kept all the same
    assert Event.objects.filter(kind="account.rate-limited").count() == 2  # two addresses


def test_the_host_header_does_not_multiply_an_accounts_allowance(client, carol):
    # Any port matches ALLOWED_HOSTS; the account's counter must not depend on the Host header.
    hosts = [f"127.0.0.1:{port}" for port in range(8001, 8100)] + ["localhost:8000"]
    for attempt in range(allowance("login_failed", "key")):
        response = client.post(
            "/account/login/",
            {"login": "carol", "password": "wrong"},
            HTTP_HOST=hosts[attempt],
            REMOTE_ADDR=f"192.0.2.{attempt + 1}",
        )
        assert response.status_code == 200
    response = client.post(
        "/account/login/",
        {"login": "carol", "password": "wrong"},
        HTTP_HOST="127.0.0.1:8999",
        REMOTE_ADDR="198.51.100.1",
    )
    assert_too_many(response, retry_after=window("login", "login_failed"))


def test_failed_passwords_from_one_address_end_in_429_across_accounts(client, carol):
    # unknown and known names alike: the limit tells nothing about which accounts exist
    for attempt in range(allowance("login_failed", "ip")):
        response = client.post(
            "/account/login/", {"login": f"someone{attempt}", "password": "wrong"}
        )
        assert response.status_code == 200
    response = client.post("/account/login/", {"login": "carol", "password": PASSWORD})
    assert_too_many(response, retry_after=window("login", "login_failed"))
    # another address is not affected
    response = client.post(
        "/account/login/", {"login": "carol", "password": PASSWORD}, REMOTE_ADDR="192.0.2.9"
    )
    assert response.status_code == 302


def test_sign_in_posts_per_address_are_limited_even_when_they_succeed(client, carol):
    for _ in range(allowance("login", "ip")):
        response = client.post("/account/login/", {"login": "carol", "password": PASSWORD})
        assert response.status_code == 302
        client.post("/account/logout/")
    response = client.post("/account/login/", {"login": "carol", "password": PASSWORD})
    assert_too_many(response, retry_after=window("login", "login_failed"))


# --- the second step ----------------------------------------------------------------------------


def _wrong_code(secret: str) -> str:
    """A six-digit code that no step near now accepts."""
    near = {format_hotp_value(hotp_value(secret, step)) for step in _steps_near_now()}
    return next(code for code in ("000000", "111111", "222222") if code not in near)


def _steps_near_now() -> range:
    import time

    now = int(time.time()) // settings.MFA_TOTP_PERIOD
    return range(now - 2, now + 3)


def test_wrong_second_factor_codes_end_in_429(client, carol):
    secret = generate_totp_secret()
    TOTP.activate(carol, secret)
    response = client.post("/account/login/", {"login": "carol", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/account/2fa/authenticate/"
    wrong = _wrong_code(secret)
    for attempt in range(allowance("login_failed", "key")):
        response = client.post(
            "/account/2fa/authenticate/", {"code": wrong}, REMOTE_ADDR=f"192.0.2.{attempt + 1}"
        )
        assert response.status_code == 200
    response = client.post("/account/2fa/authenticate/", {"code": wrong})
    assert_too_many(response, retry_after=window("login_failed"))
    assert "_auth_user_id" not in client.session
    (event,) = Event.objects.filter(kind="account.rate-limited")
    assert event.payload["path"] == "/account/2fa/authenticate/"


# --- password reset and sign-up ----------------------------------------------------------------


def test_password_reset_requests_for_one_address_end_in_429(client, carol):
    for attempt in range(allowance("reset_password", "key")):
        response = client.post(
            "/account/password/reset/",
            {"email": "carol@example.com"},
            REMOTE_ADDR=f"192.0.2.{attempt + 1}",
        )
        assert response.status_code == 302
    response = client.post("/account/password/reset/", {"email": "carol@example.com"})
    assert_too_many(response, retry_after=window("reset_password"))


def test_password_reset_requests_from_one_address_end_in_429(client):
    for attempt in range(allowance("reset_password", "ip")):
        response = client.post("/account/password/reset/", {"email": f"n{attempt}@example.com"})
        assert response.status_code == 302
    response = client.post("/account/password/reset/", {"email": "other@example.com"})
    assert_too_many(response, retry_after=window("reset_password"))


def test_sign_ups_from_one_address_end_in_429(client):
    for attempt in range(allowance("signup", "ip")):
        response = client.post("/account/signup/", {"username": f"user{attempt}"})
        assert response.status_code == 200  # an incomplete form still counts
    response = client.post(
        "/account/signup/",
        {
            "email": "fresh@example.com",
            "username": "fresh",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert_too_many(response, retry_after=window("signup"))
    assert not User.objects.filter(username="fresh").exists()


# --- the 429 answer and its audit event ----------------------------------------------------------


def test_a_flood_of_refusals_leaves_one_audit_event_per_address_and_path(client):
    for _ in range(allowance("signup", "ip")):
        client.post("/account/signup/", {})
    for _ in range(5):
        assert client.post("/account/signup/", {}).status_code == 429
    assert client.post("/account/signup/", {}, REMOTE_ADDR="192.0.2.7").status_code == 200
    events = Event.objects.filter(kind="account.rate-limited")
    assert events.count() == 1
    (event,) = events
    assert event.payload == {"path": "/account/signup/", "method": "POST"}
    assert event.ip_address == "127.0.0.1"


def test_the_429_answer_has_retry_after_and_a_readable_body(db):
    request = RequestFactory().post("/somewhere/")
    request.user = None  # as in a request that never reached authentication
    response = rate_limited(request)
    assert response.status_code == 429
    assert response["Retry-After"] == str(DEFAULT_RETRY_AFTER)
    assert b"Too Many Requests" in response.content or b"429" in response.content


def test_a_reset_key_in_the_refused_path_never_reaches_the_audit_trail(client, carol):
    path = "/account/password/reset/key/1-a1b2c3-secretsecretsecret/"
    for _ in range(allowance("reset_password_from_key", "ip")):
        client.post(path, {})
    response = client.post(path, {})
    assert_too_many(response, retry_after=window("reset_password_from_key"))
    (event,) = Event.objects.filter(kind="account.rate-limited")
    assert "secret" not in event.payload["path"]
    assert event.payload["path"] == "/account/password/reset/key/1-<key>/"
