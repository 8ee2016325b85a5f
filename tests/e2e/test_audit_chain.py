"""Two server processes on one PostgreSQL database, uploading in parallel: one unbroken chain."""

from __future__ import annotations

import base64
import secrets
import subprocess
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests

from tests.e2e._support import (
    BASTION,
    SERVER_STOP_GRACE,
    LiveServer,
    clean_environ,
    serve,
    wheel_form,
)
from tests.pg import temporary_database
from tests.processes import free_ports, stop_process_group
from tests.unit.core.builders import make_wheel

pytestmark = pytest.mark.e2e
UPLOADS = 24


def test_parallel_uploads_through_two_servers_keep_one_chain(tmp_path):
    with temporary_database("bastion_chain") as url:
        env = clean_environ()
        env.update(
            BASTION_DATA_DIR=str(tmp_path / "data"),
            BASTION_DATABASE_URL=url,
            BASTION_SECRET_KEY="chain-" + secrets.token_urlsafe(40),
        )

        def cli(*args: str) -> str:
            result = subprocess.run(
                [BASTION, *args], env=env, capture_output=True, text=True, timeout=120
            )
            assert result.returncode == 0, result.stderr
            return result.stdout.strip()

        cli("migrate")
        cli("user", "create", "alice", "--email", "alice@example.com")
        token = cli("token", "create", "alice", "--name", "parallel")
        auth = {
            "Authorization": "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()
        }
        wheels = []
        for n in range(UPLOADS):
            where = tmp_path / f"w{n}"
            where.mkdir()
            # a few projects, several versions each: new projects and new releases race
            wheels.append(make_wheel(where, name=f"chain-{n % 4}", version=f"{n}.0"))

        ports = free_ports(2)
        servers = []
        try:
            for i, port in enumerate(ports):
                logs = tmp_path / f"server{i}"
                logs.mkdir()
                live = LiveServer(
                    backend=f"postgresql node {i}",
                    base_url=f"http://127.0.0.1:{port}",
                    data_dir=tmp_path / "data",
                    env=env,
                    stderr_path=logs / "server.stderr.log",
                )
                servers.append(serve(live, workers=2, timeout=60, extra=["--no-migrate"]))

            def upload(index: int) -> int:
                digest = "0" * 64 if index % 6 == 5 else None  # refused: a wrong digest
                fields, files = wheel_form(wheels[index], sha256_digest=digest)
                port = ports[index % 2]
                response = requests.post(
                    f"http://127.0.0.1:{port}/legacy/",
                    data=fields,
                    files=files,
                    headers=auth,
                    timeout=120,
                )
                return response.status_code

            with ThreadPoolExecutor(max_workers=8) as pool:
                statuses = list(pool.map(upload, range(UPLOADS)))
        finally:
            for process in servers:
                stop_process_group(process, grace=SERVER_STOP_GRACE)

        expected = [400 if n % 6 == 5 else 200 for n in range(UPLOADS)]
        assert statuses == expected
        result = subprocess.run(
            [BASTION, "audit", "verify"], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        with psycopg.connect(url) as connection:
            seqs = [
                row[0] for row in connection.execute("SELECT seq FROM audit_event ORDER BY seq")
            ]
            kinds = dict(
                connection.execute(
                    "SELECT kind, count(*) FROM audit_event GROUP BY kind"
                ).fetchall()
            )
            token_ids = {
                row[0]
                for row in connection.execute(
                    "SELECT DISTINCT token_id FROM audit_event WHERE kind = 'file.uploaded'"
                )
            }
        assert seqs == list(range(1, len(seqs) + 1))
        assert f"intact: {len(seqs)} events" in result.stdout
        accepted = expected.count(200)
        assert kinds["file.uploaded"] == accepted
        assert kinds["project.created"] == 4
        assert kinds["release.created"] == accepted
        assert kinds["upload.rejected"] == UPLOADS - accepted
        assert len(token_ids) == 1 and "" not in token_ids
