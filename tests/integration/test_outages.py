"""A dependency that is down answers 503 naming it, never a 500 (bastion.outages).

The database, Redis and storage failures are provoked where they really surface: a view's
query, a middleware's query (the second-factor check), Django's Redis cache behind allauth's
sign-in rate limits (a port nothing listens on), the WSGI layer in front of Django. The real
processes stopped and restarted: tests/e2e/test_cluster_faults.py.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import timedelta
from unittest import mock

import pytest
from django.db import IntegrityError, InterfaceError, OperationalError
from django.test import Client, override_settings

from bastion import outages
from bastion.storage import BlobNotFound, StorageError
from tests.integration.accounts.conftest import verified_user
from tests.integration.conftest import basic
from tests.processes import free_port

pytestmark = pytest.mark.django_db

PASSWORD = "a long enough passphrase 42"


@pytest.fixture(autouse=True)
def _fresh_log_throttle():
    outages._last_logged.clear()
    outages._suppressed.clear()


def _assert_503(response, dependency: str, message: str) -> None:
    assert response.status_code == 503, (response.status_code, response.content[:300])
    assert response.reason_phrase == message
    assert response["Retry-After"] == str(outages.RETRY_AFTER)
    assert response["X-Bastion-Error"] == f"{dependency}.unavailable"
    assert response["Cache-Control"] == "no-store"


def test_which_errors_are_outages():
    import redis.exceptions

    assert outages.outage_of(OperationalError("connection refused")) is outages.DATABASE
    assert outages.outage_of(InterfaceError("connection already closed")) is outages.DATABASE
    assert outages.outage_of(redis.exceptions.ConnectionError("refused")) is outages.REDIS
    assert outages.outage_of(redis.exceptions.TimeoutError("timed out")) is outages.REDIS
    assert outages.outage_of(StorageError("could not store")) is outages.STORAGE
    # not outages: a bug, a constraint, a missing blob, a Redis command error
    assert outages.outage_of(IntegrityError("duplicate key")) is None
    assert outages.outage_of(BlobNotFound("ab/cd/...")) is None
    assert outages.outage_of(redis.exceptions.ResponseError("WRONGTYPE")) is None
    assert outages.outage_of(ValueError("x")) is None


def test_a_database_error_in_a_view_is_a_one_line_503(client, caplog):
    with mock.patch(
        "bastion.index.answers.cached_answer",
        side_effect=OperationalError('connection to server at "127.0.0.1" failed'),
    ), caplog.at_level(logging.WARNING):
        response = client.get("/simple/some-project/")
    _assert_503(response, "database", "The database is unavailable; retry later.")
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content == b"503 The database is unavailable; retry later.\n"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    (line,) = warnings
    assert line.name == "bastion.outages" and line.exc_info is None
    assert "database unavailable: OperationalError" in line.getMessage()
    assert "/simple/..." in line.getMessage() and "some-project" not in line.getMessage()


def test_a_database_error_in_a_middleware_is_a_503_too(client, alice):
    # AuthenticationMiddleware's user, then RequireSecondFactorMiddleware's query: outside any
    # view, so Django's handler500 decides (the test client must not re-raise the error).
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    with mock.patch(
        "bastion.accounts.middleware.needs_second_factor",
        side_effect=OperationalError("server closed the connection unexpectedly"),
    ):
        response = client.get("/account/tokens/")
    _assert_503(response, "database", "The database is unavailable; retry later.")


def test_other_errors_stay_a_plain_500(alice):
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    with mock.patch(
        "bastion.accounts.middleware.needs_second_factor", side_effect=RuntimeError("a bug")
    ):
        response = client.get("/account/tokens/")
    assert response.status_code == 500
    assert response.content == b"500 Internal Server Error\n"


def test_the_upload_api_keeps_its_error_format(client):
    with mock.patch(
        "bastion.tokens.services.authenticate", side_effect=OperationalError("gone")
    ):
        plain = client.post("/legacy/", HTTP_AUTHORIZATION=basic("bastion-anything"))
        as_json = client.post(
            "/legacy/", HTTP_AUTHORIZATION=basic("bastion-anything"), HTTP_ACCEPT="application/json"
        )
    _assert_503(plain, "database", "The database is unavailable; retry later.")
    assert plain.content == b"503 The database is unavailable; retry later.\n"
    _assert_503(as_json, "database", "The database is unavailable; retry later.")
    body = json.loads(as_json.content)
    assert body["errors"] == [
        {
            "code": "database.unavailable",
            "field": None,
            "message": "The database is unavailable; retry later.",
        }
    ]


def test_a_storage_error_on_download_is_a_503(client, alice, alice_token, tmp_path):
    from bastion.storage.local import LocalBlobStore
    from tests.integration.uploads.test_upload_endpoint import upload
    from tests.unit.core.builders import make_wheel

    assert upload(client, make_wheel(tmp_path, name="stored"), alice_token).status_code == 200
    page = client.get("/simple/stored/", HTTP_ACCEPT="application/vnd.pypi.simple.v1+json")
    (entry,) = json.loads(page.content)["files"]
    path = "/files/" + entry["url"].split("/files/", 1)[1]  # (the page's URLs are relative)
    unreachable = StorageError("could not read: connection refused")
    with mock.patch.multiple(
        LocalBlobStore,
        local_path=mock.Mock(side_effect=unreachable),
        read=mock.Mock(side_effect=unreachable),
        size=mock.Mock(side_effect=unreachable),
        url=mock.Mock(side_effect=unreachable),
    ):
        response = client.get(path)
    _assert_503(response, "storage", "Storage is unavailable; retry later.")
    assert client.get(path).status_code == 200  # and back


def _redis_down_settings(settings):
    """Django's cache on a Redis that is not there (a loopback port nothing listens on)."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    caches = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    return override_settings(
        CACHES=caches, BASTION=dataclasses.replace(settings.BASTION, redis_url=url)
    )


@pytest.fixture
def redis_down(settings):
    with _redis_down_settings(settings):
        yield


def test_sign_in_with_redis_down_fails_closed(redis_down):
    verified_user("carol", PASSWORD)
    client = Client(raise_request_exception=False)
    assert client.get("/account/login/").status_code == 200  # the form itself needs no cache
    for password in (PASSWORD, "wrong"):
        response = client.post("/account/login/", {"login": "carol", "password": password})
        _assert_503(response, "redis", "The cache (Redis) is unavailable; retry later.")
        assert "_auth_user_id" not in client.session


def test_reads_and_health_with_redis_down(client, redis_down):
    assert client.get("/simple/").status_code == 200
    health = client.get("/healthz")
    assert health.status_code == 503
    assert json.loads(health.content)["redis"] == "unavailable"
    assert health.reason_phrase == "Service Unavailable: redis unavailable"


def test_the_wsgi_guard_answers_what_escapes_django(caplog):
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status, headers, exc_info=None):
        started.append((status, headers))

    def down(environ, start_response):
        raise OperationalError("connection refused")

    guard = outages.OutageGuard(down)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/simple/demo/"}
    with caplog.at_level(logging.WARNING):
        body = b"".join(guard(environ, start_response))
    ((status, headers),) = started
    assert status == "503 The database is unavailable; retry later."
    assert dict(headers)["Retry-After"] == str(outages.RETRY_AFTER)
    assert body == b"503 The database is unavailable; retry later.\n"
    assert [r.name for r in caplog.records] == ["bastion.outages"]

    def buggy(environ, start_response):
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        outages.OutageGuard(buggy)(environ, start_response)


def test_warnings_are_throttled_per_dependency(caplog):
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            outages.report(outages.DATABASE, OperationalError("x"), method="GET", path="/")
        outages.report(outages.REDIS, OSError("y"), method="GET", path="/")
    assert len(caplog.records) == 2
    outages._last_logged["database"] -= outages.LOG_INTERVAL
    with caplog.at_level(logging.WARNING):
        outages.report(
            outages.DATABASE,
            OperationalError("postgresql://bastion:s3cret@db.example/x refused"),
            method="POST",
            path="/account/password/reset/key/SECRET-KEY/",
        )
    line = caplog.records[-1].getMessage()
    assert "(and 4 more since the last report)" in line
    assert "s3cret" not in line and "SECRET-KEY" not in line


def test_serve_starts_while_the_database_is_down(capsys):
    from bastion import cli

    with mock.patch(
        "bastion.accounts.models.User.objects.exists", side_effect=OperationalError("refused")
    ):
        cli._first_start_notice("127.0.0.1", 8000)
    assert "the database is unavailable; serving 503s" in capsys.readouterr().err


@pytest.mark.django_db(transaction=True)
def test_the_second_step_with_redis_down_fails_closed(settings):
    """Even the right code is refused while its rate limit cannot be counted: otherwise every
    wrong guess would cost an attacker nothing."""
    import time_machine

    from tests.integration.accounts.test_second_factor import (
        PASSWORD as CAROL_PASSWORD,
    )
    from tests.integration.accounts.test_second_factor import (
        T0,
        code_for,
        enrol_totp,
        sign_in_password,
    )

    verified_user("carol", CAROL_PASSWORD)
    with time_machine.travel(T0, tick=False):
        enrolling = Client()
        assert sign_in_password(enrolling).status_code == 302
        secret = enrol_totp(enrolling)
    other = Client(raise_request_exception=False)
    with time_machine.travel(T0 + timedelta(seconds=40), tick=False):
        assert sign_in_password(other)["Location"].startswith("/account/2fa/authenticate/")
        with _redis_down_settings(settings):
            refused = other.post(
                "/account/2fa/authenticate/", {"code": code_for(secret, T0, 1)}
            )
        _assert_503(refused, "redis", "The cache (Redis) is unavailable; retry later.")
        assert "_auth_user_id" not in other.session
        # the same code once the cache is back: the step was not burnt by the refusal
        accepted = other.post("/account/2fa/authenticate/", {"code": code_for(secret, T0, 1)})
    assert accepted.status_code == 302
    assert other.session["_auth_user_id"]
