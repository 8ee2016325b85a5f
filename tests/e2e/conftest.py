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

import contextlib
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from tests.e2e._support import (
    SERVER_STOP_GRACE,
    BuiltDist,
    LiveServer,
    SampleSpec,
    build_project,
    clean_environ,
    serve,
)
from tests.pg import temporary_database
from tests.processes import free_port, stop_process_group

E2E_DIR = Path(__file__).parent
HEALTH_TIMEOUT = 30.0

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
    # Published and installed through the nginx front (deploy/nginx/bastion.conf).
    "front": SampleSpec("e2e-front", backend="hatchling"),
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


def _check_backend_in_use(live: LiveServer, database_url: str | None) -> None:
    """The server really runs on the backend under test (its configuration was honoured)."""
    sqlite_file = live.data_dir / "bastion.sqlite3"
    if database_url is None:
        assert sqlite_file.is_file(), f"no SQLite database at {sqlite_file}"
        return
    assert not sqlite_file.exists(), "the PostgreSQL server also wrote a SQLite database"
    with psycopg.connect(database_url, connect_timeout=5) as connection:
        (tables,) = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone() or (0,)
    assert tables > 0, f"no tables in {database_url}: the server did not use PostgreSQL"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    backend: str = request.param
    with contextlib.ExitStack() as cleanup:
        data_dir = tmp_path_factory.mktemp(f"bastion-{backend}")
        port = free_port()
        env = clean_environ()
        env["BASTION_DATA_DIR"] = str(data_dir)
        env["BASTION_BASE_URL"] = f"http://127.0.0.1:{port}"
        database_url = None
        if backend == "postgresql":
            database_url = cleanup.enter_context(temporary_database("bastion_e2e"))
            env["BASTION_DATABASE_URL"] = database_url
            env["BASTION_SECRET_KEY"] = "e2e-" + secrets.token_urlsafe(40)

        live = LiveServer(
            backend=backend,
            base_url=f"http://127.0.0.1:{port}",
            data_dir=data_dir,
            env=env,
            stderr_path=data_dir / "server.stderr.log",
        )
        process = serve(live, workers=2, timeout=HEALTH_TIMEOUT)
        cleanup.callback(stop_process_group, process, grace=SERVER_STOP_GRACE)
        cleanup.callback(live.close)
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
        _check_backend_in_use(live, database_url)
        yield live


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
