"""Fixtures of the end-to-end suite: sample distributions and a live ``bastion serve`` per backend.

* ``sample_dists`` builds every sample project once per session (setuptools and hatchling, with
  ``python -m build --no-isolation``), including the dependency chain
  ``e2e-top -> e2e-middle>=1.0 -> e2e-bottom``.
* ``server`` is parametrized over ``sqlite`` and ``postgresql``; each backend gets one server for
  the whole session, on a free port, with its own data directory (and for PostgreSQL its own
  database ``bastion_e2e_<random>``, dropped afterwards). User ``alice`` and a user-wide token
  are created before the first test.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from tests.e2e._support import (
    BASTION,
    BuiltDist,
    LiveServer,
    SampleSpec,
    build_project,
    clean_environ,
)

E2E_DIR = Path(__file__).parent
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
HEALTH_TIMEOUT = 30.0
STOP_GRACE = 15.0

SAMPLES: dict[str, SampleSpec] = {
    # twine: published, then re-published; "twine_altered" has the same file names, other bytes.
    "twine": SampleSpec("e2e-twine-demo", backend="setuptools"),
    "twine_altered": SampleSpec("e2e-twine-demo", backend="setuptools", flavour="altered"),
    # uv publish, with a display name that is not normalized.
    "uv": SampleSpec("E2E_Uv.Demo", backend="hatchling"),
    # The dependency chain installed by pip and uv.
    "bottom": SampleSpec("e2e-bottom", backend="hatchling"),
    "middle": SampleSpec(
        "e2e-middle", backend="setuptools", dependencies=("e2e-bottom",), requires_python=">=3.8,<4"
    ),
    "top": SampleSpec("e2e-top", backend="hatchling", dependencies=("e2e-middle>=1.0",)),
    # Upload rejections: never accepted.
    "reject": SampleSpec("e2e-reject", backend="hatchling"),
    # Accepted through the hand-built form the rejection tests use.
    "handmade": SampleSpec("e2e-handmade", backend="hatchling"),
    # Owned by alice; bob tries to add 2.0.
    "owned": SampleSpec("e2e-owned", backend="setuptools"),
    "owned2": SampleSpec("e2e-owned", version="2.0", backend="setuptools"),
    # Uploaded concurrently, as the first files of a new project.
    "concurrent": SampleSpec("e2e-concurrent", backend="setuptools"),
    # pypitoken-restricted uploads.
    "scoped_a": SampleSpec("e2e-scoped-a", backend="hatchling"),
    "scoped_b": SampleSpec("e2e-scoped-b", backend="setuptools"),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call" and report.failed:
        server = getattr(item, "funcargs", {}).get("server")
        if isinstance(server, LiveServer):
            report.sections.append(
                (f"bastion server log ({server.backend}, tail)", server.server_log()[-6000:])
            )


# ---------------------------------------------------------------------------------------------
# Sample distributions


@pytest.fixture(scope="session")
def sample_dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BuiltDist]:
    where = tmp_path_factory.mktemp("sample-projects")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {key: pool.submit(build_project, spec, where) for key, spec in SAMPLES.items()}
        built = {key: future.result() for key, future in futures.items()}
    altered, plain = built["twine_altered"], built["twine"]
    assert altered.wheel.name == plain.wheel.name and altered.sdist.name == plain.sdist.name
    assert altered.wheel.read_bytes() != plain.wheel.read_bytes()
    assert altered.sdist.read_bytes() != plain.sdist.read_bytes()
    return built


# ---------------------------------------------------------------------------------------------
# The live server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_admin() -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable at 127.0.0.1:5432 ({exc})".replace("\n", " ")
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI=true requires it", pytrace=False)
        pytest.skip(message + "; skipping the postgresql e2e backend")


def _drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        # The server runs in its own session: kill its whole process group (master + workers).
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)


def _wait_healthy(live: LiveServer, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"bastion serve ({live.backend}) exited with {process.returncode} before "
                f"answering /healthz:\n{live.server_log()}",
                pytrace=False,
            )
        try:
            response = live.http.get(live.url("/healthz"), timeout=2)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    _stop(process)
    pytest.fail(
        f"bastion serve ({live.backend}) did not answer /healthz within {HEALTH_TIMEOUT:.0f} s "
        f"(last: {last}):\n{live.server_log()}",
        pytrace=False,
    )


def _check_backend_in_use(live: LiveServer, database: str | None) -> None:
    """The server really runs on the backend under test (its configuration was honoured)."""
    sqlite_file = live.data_dir / "bastion.sqlite3"
    if database is None:
        assert sqlite_file.is_file(), f"no SQLite database at {sqlite_file}"
        return
    assert not sqlite_file.exists(), "the PostgreSQL server also wrote a SQLite database"
    url = f"postgresql://postgres@127.0.0.1:5432/{database}"
    with psycopg.connect(url, connect_timeout=5) as connection:
        (tables,) = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone() or (0,)
    assert tables > 0, f"no tables in {database}: the server did not use PostgreSQL"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    backend: str = request.param
    data_dir = tmp_path_factory.mktemp(f"bastion-{backend}")
    port = _free_port()
    env = clean_environ()
    env["BASTION_DATA_DIR"] = str(data_dir)
    env["BASTION_BASE_URL"] = f"http://127.0.0.1:{port}"
    database = None
    if backend == "postgresql":
        admin = _postgres_admin()
        database = f"bastion_e2e_{secrets.token_hex(6)}"
        with admin:
            admin.execute(f'CREATE DATABASE "{database}"')
        env["BASTION_DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:5432/{database}"
        env["BASTION_SECRET_KEY"] = "e2e-" + secrets.token_urlsafe(40)

    live = LiveServer(
        backend=backend,
        base_url=f"http://127.0.0.1:{port}",
        data_dir=data_dir,
        env=env,
        stderr_path=data_dir / "server.stderr.log",
    )
    process = None
    try:
        with (data_dir / "server.stdout.log").open("wb") as out, live.stderr_path.open("wb") as err:
            process = subprocess.Popen(
                [BASTION, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
                env=env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        live.process = process
        _wait_healthy(live, process)
        live.password = secrets.token_urlsafe(18)
        live.cli_ok(
            "user",
            "create",
            "alice",
            "--email",
            "alice@example.com",
            "--password-stdin",
            input=live.password + "\n",
        )
        live.token = live.cli_ok("token", "create", "alice", "--name", "e2e-user-wide")
        assert live.token and "\n" not in live.token
        _check_backend_in_use(live, database)
        yield live
    finally:
        if process is not None:
            _stop(process)
        if live._session is not None:
            live._session.close()
        if database is not None:
            _drop_database(database)


# ---------------------------------------------------------------------------------------------
# Published states, once per backend


@pytest.fixture(scope="session")
def twine_demo(server: LiveServer, sample_dists: dict[str, BuiltDist]) -> BuiltDist:
    """``e2e-twine-demo`` 1.0 (wheel + sdist) published with twine."""
    dist = sample_dists["twine"]
    server.twine_ok(*dist.files)
    return dist


@pytest.fixture(scope="session")
def chain(server: LiveServer, sample_dists: dict[str, BuiltDist]) -> dict[str, BuiltDist]:
    """The dependency chain ``e2e-top -> e2e-middle -> e2e-bottom``, published with twine."""
    parts = {key: sample_dists[key] for key in ("bottom", "middle", "top")}
    server.twine_ok(*(path for dist in parts.values() for path in dist.files))
    return parts


@pytest.fixture(scope="session")
def owned(server: LiveServer, sample_dists: dict[str, BuiltDist]) -> BuiltDist:
    """``e2e-owned`` 1.0, published by alice (bob has no role on it)."""
    dist = sample_dists["owned"]
    server.twine_ok(*dist.files)
    return dist
