"""Signed metadata (TUF, PEP 458) under parallel uploads through two ``bastion serve`` processes
on one PostgreSQL database: one linear version history, which python-tuf's ngclient accepts.

The races are provoked, not hoped for. First the uploads: the test holds the index lock (the row
lock every change takes, ``lock_index``) while all uploads are sent at once, waits until uploads
from both nodes are queued on it in PostgreSQL (``pg_stat_activity``, each node with its own
``application_name``), then lets them all go together. Uploads are signed in rounds; the nodes'
background signers wait an hour here, so the rounds are run by readers of ``timestamp.json``,
and these race too: with the lock held again, readers on both nodes find the uploads unsigned
and queue on it, then all go at once. One of them signs all the uploads, the others find
nothing left and serve that same timestamp.

Then, in the database: every timestamp and snapshot version from 1 to N exactly once (N = 2:
the repository's first version and the one round); timestamp v names snapshot v (its length and
hash); each snapshot names bin versions that exist, and differs from the previous one only by
bins, each exactly one version further (no lost or forked bin version); every version is signed
by the online key of root 1; no project's signed serial lags. And ngclient (a fresh metadata
directory trusting ``1.root.json``, metadata from one node and files from the other) verifies
every uploaded file and every simple page.
"""

from __future__ import annotations

import base64
import secrets
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import requests
from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp
from tuf.ngclient import Updater

from tests.e2e._support import (
    BASTION,
    SERVER_STOP_GRACE,
    SIMPLE_JSON,
    LiveServer,
    clean_environ,
    serve,
    wheel_form,
)
from tests.pg import temporary_database
from tests.processes import free_ports, stop_process_group
from tests.unit.core.builders import make_wheel

pytestmark = pytest.mark.e2e

UPLOADS = 20
PROJECTS = 4
WAITING_PER_NODE = 2  # uploads (then readers) of each node queued on the index lock at once
READERS = 8  # concurrent reads of timestamp.json, half on each node
NODE_APP = "tuf-race-node"
WAITING_ON_THE_INDEX_LOCK = """
    SELECT application_name, count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND wait_event_type = 'Lock'
      AND application_name LIKE %s AND query LIKE '%%projects_index_state%%'
    GROUP BY application_name
"""


def _wait_for_queued(url: str, deadline: float) -> dict[str, int]:
    """Poll until requests of both nodes wait on the index lock; the most seen at once."""
    most: dict[str, int] = {}
    with psycopg.connect(url, autocommit=True) as monitor:
        while time.monotonic() < deadline:
            waiting = dict(monitor.execute(WAITING_ON_THE_INDEX_LOCK, [NODE_APP + "%"]).fetchall())
            if sum(waiting.values()) > sum(most.values()):
                most = waiting
            if len(waiting) == 2 and min(waiting.values()) >= WAITING_PER_NODE:
                time.sleep(0.3)  # let the rest of the wave queue up too
                final = dict(
                    monitor.execute(WAITING_ON_THE_INDEX_LOCK, [NODE_APP + "%"]).fetchall()
                )
                return final if sum(final.values()) >= sum(waiting.values()) else waiting
            time.sleep(0.02)
    return most


def _history(url: str) -> tuple[dict[str, dict[int, bytes]], dict[str, int]]:
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT role, version, body FROM signing_signedmetadata")
        history: dict[str, dict[int, bytes]] = {}
        for role, version, body in rows:
            history.setdefault(role, {})[version] = bytes(body)
        current = dict(connection.execute("SELECT role, version FROM signing_currentrole"))
        several = connection.execute(
            "SELECT role FROM signing_signedmetadata WHERE superseded IS NULL "
            "GROUP BY role HAVING count(*) > 1"
        ).fetchall()
        lagging = connection.execute(
            "SELECT p.normalized_name FROM projects_project p LEFT JOIN signing_signedproject s "
            "ON s.project = p.normalized_name WHERE s.serial IS DISTINCT FROM p.serial"
        ).fetchall()
    assert several == [], f"roles with more than one current version: {several}"
    assert lagging == [], f"projects whose signed targets lag: {lagging}"
    return history, current


def _signed_through(url: str) -> int:
    """The index serial through which changes are signed (each upload advanced it by one)."""
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT serial FROM signing_state WHERE id = 1").fetchone()
    assert row is not None
    return int(row[0])


def _check_linear_history(
    history: dict[str, dict[int, bytes]], current: dict[str, int], rounds: int
) -> int:
    """The assertions of the module docstring; returns the number of snapshot versions."""
    root = Metadata[Root].from_bytes(history["root"][1]).signed
    targets = Metadata[Targets].from_bytes(history["targets"][1]).signed
    last = rounds + 1
    expected = list(range(1, last + 1))  # version 1 (init), then one per signing round
    assert sorted(history[Timestamp.type]) == expected
    assert sorted(history[Snapshot.type]) == expected
    assert current[Timestamp.type] == current[Snapshot.type] == last

    snapshots: dict[int, dict[str, int]] = {}
    for version in expected:
        timestamp_md = Metadata[Timestamp].from_bytes(history[Timestamp.type][version])
        root.verify_delegate(Timestamp.type, timestamp_md.signed_bytes, timestamp_md.signatures)
        snapshot_bytes = history[Snapshot.type][version]
        named = timestamp_md.signed.snapshot_meta
        assert named.version == version
        named.verify_length_and_hashes(snapshot_bytes)  # timestamp v names exactly snapshot v
        snapshot_md = Metadata[Snapshot].from_bytes(snapshot_bytes)
        root.verify_delegate(Snapshot.type, snapshot_md.signed_bytes, snapshot_md.signatures)
        assert snapshot_md.signed.version == version
        meta = {
            name.removesuffix(".json"): info.version
            for name, info in snapshot_md.signed.meta.items()
        }
        for role, role_version in meta.items():
            assert role_version in history.get(role, {}), f"snapshot {version} names a missing "
            f"{role_version}.{role}.json"
        snapshots[version] = meta

    bumps = 0
    for version in expected[1:]:
        before, after = snapshots[version - 1], snapshots[version]
        assert set(before) == set(after)
        changed = {role: v for role, v in after.items() if before[role] != v}
        assert changed, f"snapshot {version} changed nothing"
        for role, role_version in changed.items():
            assert role.startswith("bins-"), role
            assert role_version == before[role] + 1, f"{role}: {before[role]} -> {role_version}"
        bumps += len(changed)
    assert snapshots[last]["targets"] == 1

    published = 0
    for role, versions in history.items():
        if not role.startswith("bins-"):
            continue
        assert sorted(versions) == list(range(1, max(versions) + 1)), role
        assert current[role] == max(versions) == snapshots[last][role]
        published += max(versions) - 1
        for body in versions.values():
            bin_md = Metadata[Targets].from_bytes(body)
            targets.verify_delegate(role, bin_md.signed_bytes, bin_md.signatures)
    # every bin version after the first was named by exactly one new snapshot: none was lost
    assert bumps == published
    return len(expected)


def test_parallel_uploads_through_two_nodes_leave_a_linear_signed_history(tmp_path: Path) -> None:
    with temporary_database("bastion_tuf_race") as url:
        ports = free_ports(2)
        env = clean_environ()
        env.update(
            BASTION_DATA_DIR=str(tmp_path / "data"),
            BASTION_DATABASE_URL=url,
            BASTION_SECRET_KEY="race-" + secrets.token_urlsafe(40),
            BASTION_BASE_URL=f"http://127.0.0.1:{ports[0]}",
            BASTION_TUF_SIGN_DELAY="1h",  # no background round: the readers below sign
        )

        def cli(*args: str) -> str:
            result = subprocess.run(
                [BASTION, *args], env=env, capture_output=True, text=True, timeout=120
            )
            assert result.returncode == 0, result.stderr
            return result.stdout.strip()

        cli("migrate")
        # The nodes read the online key from the default place, <data dir>/tuf-keys/online.pem.
        keys = str(tmp_path / "data" / "tuf-keys")
        cli("tuf", "init", "--keys-dir", keys, "--root-keys", "1", "--root-threshold", "1")
        cli("user", "create", "alice", "--email", "alice@example.com")
        token = cli("token", "create", "alice", "--name", "race")
        auth = {
            "Authorization": "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()
        }
        wheels: list[Path] = []
        for n in range(UPLOADS):
            where = tmp_path / f"w{n}"
            where.mkdir()
            # several projects, several releases each: new projects and new releases race
            wheels.append(make_wheel(where, name=f"tuf-race-{n % PROJECTS}", version=f"{n}.0"))

        servers = []
        try:
            for number, port in enumerate(ports):
                node_env = dict(env)
                node_env["BASTION_DATABASE_URL"] = f"{url}?application_name={NODE_APP}{number}"
                logs = tmp_path / f"node{number}"
                logs.mkdir()
                live = LiveServer(
                    backend=f"postgresql node {number}",
                    base_url=f"http://127.0.0.1:{port}",
                    data_dir=tmp_path / "data",
                    env=node_env,
                    stderr_path=logs / "server.stderr.log",
                )
                servers.append(serve(live, workers=2, timeout=60, extra=["--no-migrate"]))

            go = threading.Event()
            spans: list[tuple[float, float]] = []

            def upload(index: int) -> int:
                fields, files = wheel_form(wheels[index])
                go.wait(30)
                started = time.monotonic()
                response = requests.post(
                    f"http://127.0.0.1:{ports[index % 2]}/legacy/",
                    data=fields,
                    files=files,
                    headers=auth,
                    timeout=120,
                )
                spans.append((started, time.monotonic()))
                return response.status_code

            with psycopg.connect(url, application_name="tuf-race-test") as holder:
                # Hold the index lock: every upload's signing queues behind it.
                holder.execute("SELECT id FROM projects_index_state WHERE id = 1 FOR UPDATE")
                with ThreadPoolExecutor(max_workers=UPLOADS) as pool:
                    futures = [pool.submit(upload, n) for n in range(UPLOADS)]
                    go.set()
                    queued = _wait_for_queued(url, time.monotonic() + 30)
                    holder.commit()  # ... and all go at once
                    statuses = [future.result() for future in futures]
            assert statuses == [200] * UPLOADS
            assert len(queued) == 2 and min(queued.values()) >= WAITING_PER_NODE, (
                f"uploads of both nodes did not queue on the index lock together: {queued}"
            )
            starts = sorted(start for start, _end in spans)
            in_flight = max(
                sum(1 for start, end in spans if start <= moment < end) for moment in starts
            )
            assert in_flight >= UPLOADS // 2, in_flight

            assert _signed_through(url) == 0, "the uploads were signed in their requests"

            def read_timestamp(index: int) -> tuple[int, int]:
                go.wait(30)
                response = requests.get(
                    f"http://127.0.0.1:{ports[index % 2]}/tuf/timestamp.json", timeout=120
                )
                version = response.json()["signed"]["version"] if response.ok else -1
                return response.status_code, version

            go.clear()
            with psycopg.connect(url, application_name="tuf-race-test") as holder:
                holder.execute("SELECT id FROM projects_index_state WHERE id = 1 FOR UPDATE")
                with ThreadPoolExecutor(max_workers=READERS) as pool:
                    futures = [pool.submit(read_timestamp, n) for n in range(READERS)]
                    go.set()
                    readers_queued = _wait_for_queued(url, time.monotonic() + 30)
                    holder.commit()
                    answers = [future.result() for future in futures]
            assert len(readers_queued) == 2 and min(readers_queued.values()) >= WAITING_PER_NODE, (
                f"readers of both nodes did not queue on the index lock together: {readers_queued}"
            )
            assert answers == [(200, 2)] * READERS  # one round signed everything; all see it
            assert _signed_through(url) == UPLOADS

            history, current = _history(url)
            versions = _check_linear_history(history, current, rounds=1)
            _check_with_ngclient(url, ports, wheels, tmp_path / "client")
        finally:
            for process in servers:
                stop_process_group(process, grace=SERVER_STOP_GRACE)
        print(
            f"\n{UPLOADS} uploads, {in_flight} in flight at once, queued on the index lock at "
            f"once: {dict(sorted(queued.items()))}; readers queued: "
            f"{dict(sorted(readers_queued.items()))}; {versions} snapshot/timestamp versions"
        )


def _check_with_ngclient(url: str, ports: list[int], wheels: list[Path], where: Path) -> None:
    """A fresh client trusting 1.root.json: metadata from node 0, files from node 1."""
    with psycopg.connect(url) as connection:
        (root,) = connection.execute(
            "SELECT body FROM signing_signedmetadata WHERE role = 'root' AND version = 1"
        ).fetchone() or (None,)
        files = dict(connection.execute("SELECT filename, storage_key FROM projects_file"))
    assert root is not None and len(files) == UPLOADS
    (where / "metadata").mkdir(parents=True)
    (where / "targets").mkdir(parents=True)
    nodes = [f"http://127.0.0.1:{port}" for port in ports]
    updater = Updater(
        metadata_dir=str(where / "metadata"),
        metadata_base_url=f"{nodes[0]}/tuf/",
        target_dir=str(where / "targets"),
        target_base_url=f"{nodes[1]}/files/",
        bootstrap=bytes(root),
    )
    updater.refresh()
    for wheel in wheels:
        info = updater.get_targetinfo(files[wheel.name])
        assert info is not None, f"{wheel.name} is not signed"
        assert Path(updater.download_target(info)).read_bytes() == wheel.read_bytes()
    for number in range(PROJECTS):
        project = f"tuf-race-{number}"
        page = requests.get(f"{nodes[0]}/simple/{project}/", headers={"Accept": SIMPLE_JSON})
        assert Counter(f["filename"] for f in page.json()["files"]) == Counter(
            w.name for w in wheels if w.name.startswith(f"tuf_race_{number}-")
        )
        for name, accept in (("index.json", SIMPLE_JSON), ("index.html", "text/html")):
            info = updater.get_targetinfo(f"simple/{project}/{name}")
            assert info is not None
            for node in nodes:  # both nodes serve the signed bytes
                served = requests.get(f"{node}/simple/{project}/", headers={"Accept": accept})
                info.verify_length_and_hashes(served.content)
