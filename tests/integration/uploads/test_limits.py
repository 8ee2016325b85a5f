"""Limits of the upload API (issue 13): new projects per user and per address, failed
credentials per address, uploads per token; 429 with Retry-After and RateLimit headers, one
audit event per address and limit per window. Counters live in the database here."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.test import Client, override_settings

from bastion.audit.models import Event
from bastion.projects.models import Project
from tests.integration.conftest import basic, require_redis
from tests.integration.uploads.test_authenticate_first import forge
from tests.integration.uploads.test_upload_endpoint import form_for
from tests.unit.core.builders import make_wheel

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC)


def limits(**values: str):
    return override_settings(BASTION=dataclasses.replace(settings.BASTION, **values))


def post(path, token, *, address="203.0.113.5", **meta):
    return Client().post(
        "/legacy/", data=form_for(path), HTTP_AUTHORIZATION=basic(token), REMOTE_ADDR=address,
        **meta,
    )


def wheel(tmp_path, name, version="1.0"):
    folder = tmp_path / f"{name}-{version}"
    folder.mkdir()
    return make_wheel(folder, name=name, version=version)


def test_the_21st_new_project_is_429_while_new_versions_still_upload(alice, alice_token, tmp_path):
    with time_machine.travel(T0, tick=False):
        for number in range(20):
            assert post(wheel(tmp_path, f"proj{number}"), alice_token).status_code == 200
        refused = post(wheel(tmp_path, "proj20"), alice_token)
        assert refused.status_code == 429
        assert refused.reason_phrase.startswith("Too many new projects")
        assert refused["X-Bastion-Error"] == "ratelimit.project-create"
        assert refused["Retry-After"] == "3600"  # T0 starts a window of one hour
        assert refused["RateLimit-Policy"] == '"project-create";q=20;w=3600'
        assert refused["RateLimit"] == '"project-create";r=0;t=3600'
        assert not Project.objects.filter(normalized_name="proj20").exists()
        # an upload of a new version to an existing project is not affected
        assert post(wheel(tmp_path, "proj3", "2.0"), alice_token).status_code == 200
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):  # the next window
        assert post(wheel(tmp_path, "proj20", "1.1"), alice_token).status_code == 200


def test_the_per_address_limit_counts_every_user_from_it(
    alice, bob, alice_token, make_token, tmp_path
):
    bob_token = make_token(bob, name="bob")
    with limits(project_create_ip_limit="3/hour"), time_machine.travel(T0, tick=False):
        assert post(wheel(tmp_path, "a1"), alice_token).status_code == 200
        assert post(wheel(tmp_path, "a2"), alice_token).status_code == 200
        assert post(wheel(tmp_path, "b1"), bob_token).status_code == 200
        refused = post(wheel(tmp_path, "b2"), bob_token)
        assert refused.status_code == 429 and refused["X-Bastion-Error"].endswith("-ip")
        # the same user from another address may go on
        assert post(wheel(tmp_path, "b3"), bob_token, address="198.51.100.9").status_code == 200


def test_exempt_users_are_not_limited(alice, alice_token, tmp_path):
    alice.upload_limits_exempt = True
    alice.save(update_fields=["upload_limits_exempt"])
    with limits(project_create_limit="1/hour", upload_limit="1/hour"):
        for number in range(3):
            assert post(wheel(tmp_path, f"free{number}"), alice_token).status_code == 200


def test_a_failed_credential_flood_blocks_that_address_only(alice, alice_token, tmp_path):
    path = wheel(tmp_path, "demo")
    with limits(failed_auth_limit="3/5min"), time_machine.travel(T0, tick=False):
        for _ in range(3):
            assert post(path, forge(alice_token)).status_code == 403
        blocked = post(path, alice_token)  # even a valid token, from that address
        assert blocked.status_code == 429
        assert blocked["X-Bastion-Error"] == "ratelimit.failed-auth"
        assert int(blocked["Retry-After"]) == 300
        assert blocked.wsgi_request.environ["wsgi.input"].read_started is False
        # a valid token from another address is never slowed by someone else's failures
        assert post(path, alice_token, address="198.51.100.20").status_code == 200
    with limits(failed_auth_limit="3/5min"), time_machine.travel(T0 + timedelta(minutes=5)):
        assert post(wheel(tmp_path, "demo", "2.0"), alice_token).status_code == 200


def test_x_forwarded_for_counts_only_behind_a_trusted_proxy(alice, alice_token, tmp_path):
    path = wheel(tmp_path, "demo")
    proxy = "10.0.0.2"
    with limits(failed_auth_limit="2/5min", trusted_proxies=("10.0.0.0/24",)):
        with time_machine.travel(T0, tick=False):
            for _ in range(2):
                post(path, forge(alice_token), address=proxy, HTTP_X_FORWARDED_FOR="192.0.2.7")
            # the attacker behind the proxy is blocked; another client of the proxy is not
            assert post(
                path, alice_token, address=proxy, HTTP_X_FORWARDED_FOR="192.0.2.7"
            ).status_code == 429
            assert post(
                path, alice_token, address=proxy, HTTP_X_FORWARDED_FOR="192.0.2.8"
            ).status_code == 200
    with limits(failed_auth_limit="2/5min"), time_machine.travel(T0, tick=False):
        # without a trusted proxy the header is ignored: a client cannot pick its address
        for spoofed in ("192.0.2.50", "192.0.2.51"):
            post(path, forge(alice_token), address="198.51.100.77",
                 HTTP_X_FORWARDED_FOR=spoofed)
        assert post(path, alice_token, address="198.51.100.77",
                    HTTP_X_FORWARDED_FOR="192.0.2.52").status_code == 429


def test_uploads_per_token(alice, alice_token, tmp_path):
    with limits(upload_limit="2/hour"), time_machine.travel(T0, tick=False):
        assert post(wheel(tmp_path, "demo", "1.0"), alice_token).status_code == 200
        assert post(wheel(tmp_path, "demo", "2.0"), alice_token).status_code == 200
        refused = post(wheel(tmp_path, "demo", "3.0"), alice_token)
        assert refused.status_code == 429 and refused["X-Bastion-Error"] == "ratelimit.upload"
        assert refused.wsgi_request.environ["wsgi.input"].read_started is False


def test_429s_leave_one_event_per_address_and_limit_per_window(alice, alice_token, tmp_path):
    path = wheel(tmp_path, "demo")
    with limits(failed_auth_limit="1/5min"), time_machine.travel(T0, tick=False):
        post(path, forge(alice_token))
        for _ in range(10):
            assert post(path, alice_token).status_code == 429
        events = Event.objects.filter(kind="ratelimit.hit")
        assert events.count() == 1
        event = events.get()
        assert event.payload == {"limit": "failed-auth", "address": "203.0.113.0/24"}
        assert event.credential == "anonymous"
    with limits(failed_auth_limit="1/5min"), time_machine.travel(T0 + timedelta(minutes=5)):
        post(path, forge(alice_token))
        post(path, alice_token)
    assert Event.objects.filter(kind="ratelimit.hit").count() == 2


def test_an_unreachable_counter_store_fails_project_creation_closed(alice, alice_token, tmp_path):
    from tests.processes import free_port

    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    with limits(redis_url=dead_redis):
        refused = post(wheel(tmp_path, "brand-new"), alice_token)
        assert refused.status_code == 503
        assert refused["X-Bastion-Error"] == "ratelimit.unavailable"
    assert post(wheel(tmp_path, "existing"), alice_token).status_code == 200
    with limits(redis_url=dead_redis):
        # uploads to existing projects continue
        assert post(wheel(tmp_path, "existing", "2.0"), alice_token).status_code == 200


def test_counters_in_redis_are_shared_and_exact(alice, alice_token, tmp_path):
    """The same limits with BASTION_REDIS_URL (the machine's Redis at 127.0.0.1:6379)."""
    import redis

    require_redis()
    with limits(redis_url="redis://127.0.0.1:6379/15", upload_limit="2/hour"):
        redis.Redis(host="127.0.0.1", port=6379, db=15).flushdb()
        assert post(wheel(tmp_path, "demo", "1.0"), alice_token).status_code == 200
        assert post(wheel(tmp_path, "demo", "2.0"), alice_token).status_code == 200
        assert post(wheel(tmp_path, "demo", "3.0"), alice_token).status_code == 429
        redis.Redis(host="127.0.0.1", port=6379, db=15).flushdb()


def test_database_counters_of_windows_long_past_are_dropped(alice, alice_token, tmp_path):
    from bastion.uploads.models import RateCounter

    with limits(upload_limit="100/hour"), time_machine.travel(T0, tick=False):
        assert post(wheel(tmp_path, "demo", "1.0"), alice_token).status_code == 200
        old = set(RateCounter.objects.values_list("key", "window_start"))
        assert old
    with limits(upload_limit="100/hour"), time_machine.travel(T0 + timedelta(days=3)):
        assert post(wheel(tmp_path, "demo", "2.0"), alice_token).status_code == 200
        now = set(RateCounter.objects.values_list("key", "window_start"))
    assert now and not (now & old)
