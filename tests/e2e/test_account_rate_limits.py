"""Account rate limits are shared by every server process: two ``bastion serve`` processes on
one database (SQLite data directory, or PostgreSQL) count the same attempts, so spreading them
over nodes gains an attacker nothing (issue 9 §8).

Attempts alternate between the two servers; a per-process count would never reach the limit.
Each test uses one limit (login_failed per account, reset_password per address, signup per
address), so the shared per-address counters of the others do not interfere.
"""

from __future__ import annotations

import contextlib
import math
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e._support import SERVER_STOP_GRACE, LiveServer, clean_environ, serve
from tests.pg import temporary_database
from tests.processes import free_ports, stop_process_group

pytestmark = pytest.mark.e2e

HEALTH_TIMEOUT = 30.0
PASSWORD = "a long enough passphrase 42"


def limit(action: str, per: str) -> tuple[int, int]:
    """(attempts allowed, window in seconds) of the configured ``action`` limit ``per`` key/ip,
    from the settings module the servers load too (ACCOUNT_RATE_LIMITS)."""
    from allauth.core.internal.ratelimit import parse_rates
    from django.conf import settings

    rates = parse_rates(settings.ACCOUNT_RATE_LIMITS[action])
    (rate,) = [r for r in rates if r.per == per]
    return rate.amount, math.ceil(max(r.duration for r in rates))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def two_servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two ``bastion serve`` processes (one worker each) sharing one database and data dir."""
    backend: str = request.param
    with contextlib.ExitStack() as cleanup:
        data_dir = tmp_path_factory.mktemp(f"bastion-rl-{backend}")
        shared = clean_environ()
        shared["BASTION_DATA_DIR"] = str(data_dir)
        shared["BASTION_SECRET_KEY"] = "e2e-" + secrets.token_urlsafe(40)
        if backend == "postgresql":
            shared["BASTION_DATABASE_URL"] = cleanup.enter_context(
                temporary_database("bastion_e2e_rl")
            )
        ports = free_ports(2)
        # nodes behind one public origin: both have the first one's URL as BASTION_BASE_URL
        shared["BASTION_BASE_URL"] = f"http://127.0.0.1:{ports[0]}"
        servers = []
        for number, port in enumerate(ports):
            env = dict(shared)
            live = LiveServer(
                backend=backend,
                base_url=f"http://127.0.0.1:{port}",  # where this one listens
                data_dir=data_dir,
                env=env,
                stderr_path=Path(data_dir) / f"server{number}.stderr.log",
            )
            # the first one migrates (database and cache table); the second one only serves
            extra = ("--no-migrate",) if number else ()
            process = serve(live, workers=1, timeout=HEALTH_TIMEOUT, extra=extra)
            cleanup.callback(stop_process_group, process, grace=SERVER_STOP_GRACE)
            cleanup.callback(live.close)
            servers.append(live)
        yield servers[0], servers[1]


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def post_form(live: LiveServer, path: str, data: dict[str, str]) -> requests.Response:
    """GET the form (for its CSRF cookie), then POST it as a browser would, on ``live``."""
    with _session() as session:
        page = session.get(live.url(path), timeout=30)
        assert page.status_code == 200, (page.status_code, page.text[:500])
        return session.post(
            live.url(path),
            data={**data, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
            headers={"Referer": live.url(path)},
            allow_redirects=False,
            timeout=30,
        )


def assert_too_many(response: requests.Response, *, retry_after: int) -> None:
    assert response.status_code == 429, (response.status_code, response.text[:500])
    assert response.headers["Retry-After"] == str(retry_after)


def test_failed_sign_ins_for_one_account_are_counted_across_processes(
    two_servers: tuple[LiveServer, LiveServer],
) -> None:
    first, second = two_servers
    allowed, window = limit("login_failed", "key")
    name = "rl-" + secrets.token_hex(3)
    first.cli_ok(
        "user",
        "create",
        name,
        "--email",
        f"{name}@example.com",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    for attempt in range(allowed):
        live = (first, second)[attempt % 2]
        response = post_form(live, "/account/login/", {"login": name, "password": "wrong"})
        assert response.status_code == 200, (live.base_url, response.status_code)
    for live in (first, second):
        response = post_form(live, "/account/login/", {"login": name, "password": PASSWORD})
        assert_too_many(response, retry_after=window)


def test_password_resets_for_one_address_are_counted_across_processes(
    two_servers: tuple[LiveServer, LiveServer],
) -> None:
    first, second = two_servers
    allowed, window = limit("reset_password", "key")
    email = f"rl-{secrets.token_hex(3)}@example.com"  # no such account: counted all the same
    for attempt in range(allowed):
        live = (first, second)[attempt % 2]
        response = post_form(live, "/account/password/reset/", {"email": email})
        assert response.status_code == 302, (live.base_url, response.status_code)
    for live in (first, second):
        response = post_form(live, "/account/password/reset/", {"email": email})
        assert_too_many(response, retry_after=window)


def test_sign_ups_from_one_address_are_counted_across_processes(
    two_servers: tuple[LiveServer, LiveServer],
) -> None:
    first, second = two_servers
    allowed, window = limit("signup", "ip")
    for attempt in range(allowed):
        live = (first, second)[attempt % 2]
        response = post_form(live, "/account/signup/", {"username": f"x{attempt}"})
        assert response.status_code == 200, (live.base_url, response.status_code)
    for live in (first, second):
        response = post_form(live, "/account/signup/", {"username": "late"})
        assert_too_many(response, retry_after=window)
