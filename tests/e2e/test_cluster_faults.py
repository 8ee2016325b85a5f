"""Faults in a cluster (issue 12, "Survives faults"): two ``bastion serve --no-migrate`` nodes on
PostgreSQL, a SeaweedFS S3 gateway and a private Redis, all real processes (tests/e2e/cluster.py).

* Storage down: uploads get a one-line 503 naming storage and leave no row, file event or
  object; downloads 503, simple pages keep serving; /healthz names storage; after the restart
  uploads work again without restarting the nodes, and pip installs from the other node.
* Redis down: simple pages, downloads and uploads to existing projects keep working; sign-in
  is refused (503, fails closed) as is creating a project (its rate limit); /healthz names
  redis; no 500 anywhere; everything resumes when Redis is back.
* PostgreSQL down (a private cluster stopped with ``pg_ctl -m immediate``): every request
  that needs the database, the simple-page fast path included, is a 503 naming it; /healthz
  names it; service resumes by itself when it is back.
* Parallel first uploads of one new project through both nodes, all queued on the index lock
  at once (held by the test, seen waiting in ``pg_stat_activity``): one project, every file
  once (rows and objects), each upload listed by both nodes as soon as it returns, one valid
  audit chain, one linear signed history that python-tuf's ngclient accepts.
* ``kill -9`` of a node in the middle of an upload, once while the body is in flight, once in
  the window between storing the blob and committing the rows (aimed at by holding the index
  lock the commit needs, seen waiting in ``pg_stat_activity``): no row and no event; the blob
  the second kill leaves is an orphan that ``bastion storage sweep`` removes; the other node
  serves throughout; the same upload retried on the other node succeeds and installs with
  uv and pip.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import requests

from tests.e2e._support import (
    PYTHON,
    UV,
    LiveServer,
    client_environ,
    describe,
    output_of,
    run,
    wheel_form,
)
from tests.e2e.cluster import Cluster, PostgresProcess, RedisProcess, SeaweedFSProcess
from tests.pg import temporary_database
from tests.s3server import new_bucket_name
from tests.unit.core.builders import make_wheel

pytestmark = pytest.mark.e2e

RECOVERY_TIMEOUT = 30.0
STORAGE_DOWN = "Storage is unavailable; retry later."
DATABASE_DOWN = "The database is unavailable; retry later."
REDIS_DOWN = "The cache (Redis) is unavailable; retry later."
PASSWORD = "cluster sign-in passphrase 42"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(temporary_database("bastion_cluster"))
        s3 = SeaweedFSProcess(root / "seaweedfs")
        stack.callback(s3.stop)
        s3.start()
        redis = RedisProcess(root)
        stack.callback(redis.stop)
        redis.start()
        built = Cluster(
            database_url=database_url,
            s3=s3,
            bucket=new_bucket_name("cluster"),
            redis=redis,
            root=root / "nodes",
        )
        stack.callback(built.stop)
        built.set_up()
        built.cli(
            "user",
            "create",
            "carol",
            "--email",
            "carol@example.com",
            "--password-stdin",
            input=PASSWORD + "\n",
        )
        yield built


@pytest.fixture(scope="module")
def published(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``cluster-base`` 1.0, published through node 0 before any fault."""
    wheel = make_wheel(tmp_path_factory.mktemp("base"), name="cluster-base", version="1.0")
    cluster.nodes[0].twine_ok(wheel)
    return wheel


def _wheel(where: Path, name: str, version: str, *, megabytes: int = 0) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    module = name.replace("-", "_")
    extra = {f"{module}/blob.bin": _incompressible(megabytes)} if megabytes else None
    return make_wheel(where, name=name, version=version, extra_members=extra)


def _incompressible(megabytes: int) -> bytes:
    return os.urandom(megabytes * 1024 * 1024)


def _wait_healthy(node: LiveServer, timeout: float = RECOVERY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            response = node.get("/healthz", timeout=5)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text}"
        time.sleep(0.2)
    pytest.fail(f"{node.backend} not healthy again within {timeout:.0f} s: {last}")


def _health(node: LiveServer) -> tuple[int, str, dict[str, str]]:
    response = node.get("/healthz", timeout=30)
    return response.status_code, response.reason, response.json()


def _assert_503(response: requests.Response, message: str, dependency: str) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert response.reason == message
    assert response.text == f"503 {message}\n"
    assert response.headers["Retry-After"].isdigit()
    assert response.headers["X-Bastion-Error"] == f"{dependency}.unavailable"


def _assert_no_500s(*nodes: LiveServer) -> None:
    for node in nodes:
        log = node.server_log()
        assert "Traceback" not in log and "Internal Server Error" not in log, log[-4000:]


def _file_url(node: LiveServer, project: str, filename: str) -> str:
    page = node.simple_json(project)
    assert page is not None
    (entry,) = [f for f in page["files"] if f["filename"] == filename]
    return str(entry["url"])


def _download(node: LiveServer, url: str) -> requests.Response:
    path = "/files/" + url.split("/files/", 1)[1]  # asked of this node (URLs are relative)
    return node.get(path, timeout=60)


def _install(tool: str, node: LiveServer, requirement: str, target: Path) -> None:
    """pip or uv installs ``requirement`` into ``target`` with ``node`` as the only index."""
    if tool == "pip":
        args = [
            PYTHON,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--target",
            str(target),
            "--index-url",
            node.simple_url,
            requirement,
        ]
    else:
        args = [
            UV,
            "pip",
            "install",
            "--no-config",
            "--no-cache",
            "--no-deps",
            "--python",
            PYTHON,
            "--target",
            str(target),
            "--index-url",
            node.simple_url,
            requirement,
        ]
    result = run(args, env=client_environ(), timeout=300)
    assert result.returncode == 0, describe(result)
    module = requirement.split("==")[0].replace("-", "_")
    assert (target / module / "__init__.py").is_file(), sorted(p.name for p in target.iterdir())


class Watcher:
    """Polls one node while the test hurts another: every answer must be a 200."""

    def __init__(self, node: LiveServer, project: str) -> None:
        self.node, self.project = node, project
        self.answers: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with requests.Session() as session:
            session.trust_env = False
            while not self._stop.is_set():
                for path in (f"/simple/{self.project}/", "/healthz"):
                    try:
                        status = session.get(self.node.url(path), timeout=10).status_code
                        self.answers.append(f"{path} {status}")
                    except requests.RequestException as exc:
                        self.answers.append(f"{path} {type(exc).__name__}")
                time.sleep(0.05)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        failures = [a for a in self.answers if not a.endswith(" 200")]
        assert self.answers and not failures, failures[:10]


# ---------------------------------------------------------------------------------------------
# (a) storage


def test_storage_outage_is_a_clear_503_and_heals(
    cluster: Cluster, published: Path, tmp_path: Path
) -> None:
    node0, node1 = cluster.nodes
    wheel = _wheel(tmp_path, "cluster-storage", "1.0")
    base_url = _file_url(node1, "cluster-base", published.name)
    cluster.s3.stop()
    try:
        result = node0.twine(wheel)  # (twine tries 5 times on a 5xx)
        assert result.returncode != 0
        assert f'Received "503: {STORAGE_DOWN}"' in output_of(result), describe(result)

        status, reason, body = _health(node1)
        assert (status, reason) == (503, "Service Unavailable: storage unavailable")
        assert body == {
            "status": "degraded",
            "database": "ok",
            "storage": "unavailable",
            "redis": "ok",
        }
        # reads that need no blob keep serving; a download is a 503 naming storage
        assert node1.simple_files("cluster-base") != {}
        _assert_503(_download(node1, base_url), STORAGE_DOWN, "storage")
        # nothing of the refused upload but the record of its refusals (one per try)
        assert cluster.file_rows(wheel.name) == 0
        refusals = cluster.query(
            "SELECT kind, payload->>'code' FROM audit_event WHERE payload->>'filename' = %s",
            wheel.name,
        )
        assert refusals == [("upload.rejected", "upload.storage-unavailable")] * 5, refusals
    finally:
        cluster.s3.start()
    assert cluster.objects_named(wheel.name) == []  # (listed once the gateway is back)
    for node in cluster.nodes:
        _wait_healthy(node)
    node0.twine_ok(wheel)
    assert cluster.file_rows(wheel.name) == 1
    assert len(cluster.objects_named(wheel.name)) == 2  # the wheel and its PEP 658 metadata
    _install("pip", node1, "cluster-storage==1.0", tmp_path / "pip-target")
    assert _download(node1, base_url).content == published.read_bytes()
    _assert_no_500s(node0, node1)


# ---------------------------------------------------------------------------------------------
# (b) Redis


def _sign_in(node: LiveServer) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False
        form = session.get(node.url("/account/login/"), timeout=30)
        assert form.status_code == 200, form.status_code
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert match is not None
        return session.post(
            node.url("/account/login/"),
            data={"csrfmiddlewaretoken": match.group(1), "login": "carol", "password": PASSWORD},
            headers={"Referer": node.url("/account/login/")},
            allow_redirects=False,
            timeout=30,
        )


def test_redis_outage_keeps_reads_and_fails_sign_in_closed(
    cluster: Cluster, published: Path, tmp_path: Path
) -> None:
    node0, node1 = cluster.nodes
    base_url = _file_url(node0, "cluster-base", published.name)
    update = _wheel(tmp_path / "update", "cluster-base", "1.1")
    new_project = _wheel(tmp_path / "new", "cluster-redis", "1.0")
    cluster.redis.stop()
    try:
        assert node1.simple_files("cluster-base") != {}
        assert _download(node1, base_url).content == published.read_bytes()
        status, reason, body = _health(node0)
        assert (status, reason) == (503, "Service Unavailable: redis unavailable")
        assert body["redis"] == "unavailable" and body["database"] == body["storage"] == "ok"

        refused = _sign_in(node1)
        _assert_503(refused, REDIS_DOWN, "redis")
        assert "sessionid" not in refused.cookies

        node0.twine_ok(update)  # uploads to an existing project do not need the counters
        result = node1.twine(new_project)  # a new project does: its limit fails closed
        assert result.returncode != 0
        assert 'Received "503: New projects cannot be created right now' in output_of(result)
        assert cluster.file_rows(new_project.name) == 0
        assert cluster.objects_named(new_project.name) == []
    finally:
        cluster.redis.start()
    for node in cluster.nodes:
        _wait_healthy(node)
    signed_in = _sign_in(node1)
    assert signed_in.status_code == 302, (signed_in.status_code, signed_in.text[:300])
    assert "sessionid" in signed_in.cookies
    node1.twine_ok(new_project)
    assert cluster.file_rows(new_project.name) == 1
    _assert_no_500s(node0, node1)


# ---------------------------------------------------------------------------------------------
# (c) PostgreSQL


@pytest.fixture
def private_postgres() -> Iterator[PostgresProcess]:
    postgres = PostgresProcess()
    try:
        postgres.start()
        with psycopg.connect(postgres.url, autocommit=True) as admin:
            admin.execute("CREATE DATABASE bastion")
        yield postgres
    finally:
        postgres.remove()


def test_database_outage_is_a_503_naming_it_and_heals(
    cluster: Cluster, private_postgres: PostgresProcess, tmp_path: Path
) -> None:
    """Two more nodes, on a PostgreSQL server of their own that the test stops and starts."""
    database_url = private_postgres.url.rsplit("/", 1)[0] + "/bastion"
    pg_cluster = Cluster(
        database_url=database_url,
        s3=cluster.s3,
        bucket=new_bucket_name("pgdown"),
        redis=cluster.redis,
        root=tmp_path / "nodes",
    )
    try:
        pg_cluster.set_up()
        node0, node1 = pg_cluster.nodes
        first = _wheel(tmp_path / "first", "cluster-pg", "1.0")
        second = _wheel(tmp_path / "second", "cluster-pg", "2.0")
        node0.twine_ok(first)
        assert node1.simple_files("cluster-pg") != {}  # cached: the fast path answers next
        private_postgres.stop()
        try:
            for node in (node0, node1):
                # the simple-page fast path (a cached page), Django's views, the upload API
                _assert_503(node.get("/simple/cluster-pg/"), DATABASE_DOWN, "database")
                _assert_503(node.get("/pypi/cluster-pg/json"), DATABASE_DOWN, "database")
                status, reason, body = _health(node)
                assert (status, reason) == (503, "Service Unavailable: database unavailable")
                assert body == {
                    "status": "degraded",
                    "database": "unavailable",
                    "storage": "ok",
                    "redis": "ok",
                }
            result = node1.twine(second)
            assert result.returncode != 0
            assert f'Received "503: {DATABASE_DOWN}"' in output_of(result), describe(result)
        finally:
            private_postgres.start()
        for node in (node0, node1):
            _wait_healthy(node)
        node1.twine_ok(second)
        assert set(node0.simple_files("cluster-pg")) == {first.name, second.name}
        assert pg_cluster.file_rows(second.name) == 1
        assert len(pg_cluster.objects_named(second.name)) == 2
        _install("pip", node0, "cluster-pg==2.0", tmp_path / "pip-target")
        _assert_no_500s(node0, node1)
    finally:
        pg_cluster.stop()


# ---------------------------------------------------------------------------------------------
# (d) kill -9 mid-upload


def _raw_upload_start(node: LiveServer, token: str, wheel: Path) -> tuple[socket.socket, bytes]:
    """Send the headers and the first half of a legacy upload; returns the socket and the rest."""
    data, files = wheel_form(wheel)
    prepared = requests.Request("POST", node.upload_url, data=data, files=files).prepare()
    body = prepared.body
    assert isinstance(body, bytes)
    host, port = node.base_url.split("://", 1)[1].split(":")
    auth = base64.b64encode(f"__token__:{token}".encode()).decode()
    content_type = str(prepared.headers["Content-Type"])
    head = (
        f"POST /legacy/ HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Basic {auth}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    connection = socket.create_connection((host, int(port)), timeout=30)
    connection.sendall(head + body[: len(body) // 2])
    return connection, body[len(body) // 2 :]


def _spooled(node: LiveServer) -> list[Path]:
    return sorted(node.spool_dir.glob("upload-*")) if node.spool_dir.exists() else []


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out waiting until {what}")


WAITING_FOR_THE_INDEX_LOCK = """
    SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND wait_event_type = 'Lock'
      AND query LIKE '%%projects_index_state%%'
"""


def test_kill_9_mid_upload_leaves_nothing_and_the_other_node_serves(
    cluster: Cluster, published: Path, tmp_path: Path
) -> None:
    node0, node1 = cluster.nodes
    wheel = _wheel(tmp_path, "cluster-kill", "1.0", megabytes=24)
    name = wheel.name
    try:
        with Watcher(node0, "cluster-base"):
            # 1. The body is in flight: node 1 has spooled part of it, then dies.
            connection, _unsent = _raw_upload_start(node1, cluster.token, wheel)
            _wait_until(lambda: any(p.stat().st_size > 0 for p in _spooled(node1)), "node 1 spools")
            cluster.kill(1)
            connection.close()
            assert cluster.file_rows(name) == 0
            assert cluster.events_naming(name) == []
            assert cluster.objects_named(name) == []
            # the dead node's partial spool file is removed when it starts again
            assert _spooled(node1) != []
            cluster.start(1)
            assert _spooled(node1) == []

            # 2. Between storing the blob and committing the rows: the rows need the index
            # lock, which this test holds; once node 1's upload waits for it and its blob (stored
            # by another thread meanwhile) is in the bucket, node 1 dies.
            with psycopg.connect(cluster.database_url) as holder:
                holder.execute("SELECT id FROM projects_index_state WHERE id = 1 FOR UPDATE")
                data, files = wheel_form(wheel)
                sender = threading.Thread(
                    target=_post_ignoring_errors, args=(node1, data, files), daemon=True
                )
                sender.start()
                _wait_until(
                    lambda: cluster.query(WAITING_FOR_THE_INDEX_LOCK)[0][0] >= 1,
                    "node 1's upload waits for the index lock",
                    timeout=60,
                )
                _wait_until(
                    lambda: len(cluster.objects_named(name)) == 2,  # the blob and its metadata
                    "node 1 stores the blob while it waits",
                    timeout=60,
                )
                stored = cluster.objects_named(name)
                cluster.kill(1)
                holder.rollback()
            sender.join(timeout=30)
            assert cluster.file_rows(name) == 0
            assert cluster.events_naming(name) == []
            # Those objects belong to no file: an orphan, which the sweep removes (by age;
            # here nothing else is uploading, so anything unreferenced may go).
            assert cluster.objects_named(name) == stored
            time.sleep(1.0)
            swept = cluster.cli("storage", "sweep", "--older-than", "1s")
            assert swept.startswith("removed 2 unreferenced blob(s) of "), swept
            assert cluster.objects_named(name) == []

            # 3. The same upload, retried on the surviving node, succeeds.
            node0.twine_ok(wheel)
    finally:
        cluster.ensure_running(1)
    assert cluster.file_rows(name) == 1
    assert cluster.events_naming(name) == ["file.uploaded"]
    assert len(cluster.objects_named(name)) == 2
    _install("uv", node0, "cluster-kill==1.0", tmp_path / "uv-target")
    _install("pip", node1, "cluster-kill==1.0", tmp_path / "pip-target")
    blob = tmp_path / "uv-target" / "cluster_kill" / "blob.bin"
    assert blob.stat().st_size == 24 * 1024 * 1024
    _assert_no_500s(node0)


def _post_ignoring_errors(node: LiveServer, data: dict[str, str], files: object) -> None:
    auth = base64.b64encode(f"__token__:{node.token}".encode()).decode()
    with contextlib.suppress(requests.RequestException), requests.Session() as session:
        session.trust_env = False
        session.post(
            node.upload_url,
            data=data,
            files=files,  # type: ignore[arg-type]
            headers={"Authorization": f"Basic {auth}"},
            timeout=120,
        )


def test_nodes_log_no_tracebacks(cluster: Cluster) -> None:
    """After every fault above: whatever the nodes logged, it was never a 500 traceback."""
    for node in cluster.nodes:
        lines = [line for line in node.server_log().splitlines() if "bastion.outages" in line]
        for line in lines:
            assert "WARNING bastion.outages: 503 for" in line, line
    _assert_no_500s(*cluster.nodes)


# ---------------------------------------------------------------------------------------------
# Concurrency: the first files of one new project, through both nodes at once

RACE_UPLOADS = 6
WAITING_ON_THE_INDEX_LOCK = """
    SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND wait_event_type = 'Lock'
      AND query LIKE '%%projects_index_state%%'
"""


def test_parallel_first_uploads_through_both_nodes(cluster: Cluster, tmp_path: Path) -> None:
    project = "cluster-race"
    wheels = [_wheel(tmp_path / f"w{n}", project, f"1.{n}") for n in range(RACE_UPLOADS)]
    auth = {
        "Authorization": "Basic " + base64.b64encode(f"__token__:{cluster.token}".encode()).decode()
    }
    go = threading.Event()
    seen_at_return: dict[str, list[bool]] = {}

    def upload(number: int) -> int:
        node = cluster.nodes[number % 2]
        fields, files = wheel_form(wheels[number])
        go.wait(30)
        response = requests.post(
            node.upload_url, data=fields, files=files, headers=auth, timeout=120
        )
        if response.status_code == 200:  # as soon as it returns, both nodes list it
            seen_at_return[wheels[number].name] = [
                wheels[number].name in each.simple_files(project) for each in cluster.nodes
            ]
        return response.status_code

    with psycopg.connect(cluster.database_url) as holder:
        # The index lock every upload's decision takes: all of them pass their checks before
        # it (the project does not exist yet), then wait for it together.
        holder.execute("SELECT id FROM projects_index_state WHERE id = 1 FOR UPDATE")
        with ThreadPoolExecutor(max_workers=RACE_UPLOADS) as pool:
            futures = [pool.submit(upload, n) for n in range(RACE_UPLOADS)]
            go.set()
            queued = _wait_until_queued(cluster.database_url, RACE_UPLOADS)
            holder.commit()
            statuses = [future.result() for future in futures]
    assert statuses == [200] * RACE_UPLOADS
    assert queued == RACE_UPLOADS, f"only {queued} uploads queued on the index lock together"
    assert seen_at_return == {w.name: [True, True] for w in wheels}

    (count,) = cluster.query(
        "SELECT count(*) FROM projects_project WHERE normalized_name = %s", project
    )[0]
    assert count == 1
    for wheel in wheels:
        assert cluster.file_rows(wheel.name) == 1
        assert len(cluster.objects_named(wheel.name)) == 2  # the wheel and its metadata
        assert cluster.events_naming(wheel.name) == ["file.uploaded"]
    expected = {wheel.name for wheel in wheels}
    for node in cluster.nodes:
        assert set(node.simple_files(project)) == expected
    assert "intact" in cluster.cli("audit", "verify").lower()
    _check_signed_history(cluster, project, wheels, tmp_path / "tuf-client")


def _wait_until_queued(url: str, wanted: int, timeout: float = 30.0) -> int:
    most = 0
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as monitor:
        while time.monotonic() < deadline and most < wanted:
            (waiting,) = monitor.execute(WAITING_ON_THE_INDEX_LOCK).fetchone() or (0,)
            most = max(most, int(waiting))
            time.sleep(0.02)
    return most


def _check_signed_history(cluster: Cluster, project: str, wheels: list[Path], where: Path) -> None:
    """A fresh ngclient trusting 1.root.json (metadata from node 0, files from node 1) verifies
    every wheel and the project's pages; then (its read of timestamp.json ran the last signing
    round) every snapshot and timestamp version from 1 to the current is there once (no fork,
    none lost)."""
    from tuf.ngclient import Updater

    (root,) = cluster.query(
        "SELECT body FROM signing_signedmetadata WHERE role = 'root' AND version = 1"
    )[0]
    (where / "metadata").mkdir(parents=True)
    (where / "targets").mkdir()
    node0, node1 = cluster.nodes
    updater = Updater(
        metadata_dir=str(where / "metadata"),
        metadata_base_url=node0.url("/tuf/"),
        target_dir=str(where / "targets"),
        target_base_url=node1.url("/files/"),
        bootstrap=bytes(root),
    )
    updater.refresh()
    for wheel in wheels:
        key = _file_url(node0, project, wheel.name).split("/files/", 1)[1].split("#")[0]
        info = updater.get_targetinfo(key)
        assert info is not None, f"{key} is not signed"
        assert Path(updater.download_target(info)).read_bytes() == wheel.read_bytes()
    for page in ("index.html", "index.json"):
        assert updater.get_targetinfo(f"simple/{project}/{page}") is not None
    for role in ("snapshot", "timestamp"):
        rows = cluster.query(
            "SELECT version FROM signing_signedmetadata WHERE role = %s ORDER BY version", role
        )
        (current,) = cluster.query("SELECT version FROM signing_currentrole WHERE role = %s", role)[
            0
        ]
        assert [version for (version,) in rows] == list(range(1, current + 1)), role
