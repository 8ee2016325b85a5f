"""Two server processes on one PostgreSQL database, uploading in parallel: one unbroken chain."""

from __future__ import annotations

import base64
import hashlib
import secrets
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import requests

from tests.e2e._support import BASTION, clean_environ
from tests.pg import temporary_database
from tests.unit.core.builders import make_wheel

pytestmark = pytest.mark.e2e
UPLOADS = 24


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [BASTION, "serve", "--no-migrate", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not start:\n" + log.read_text())


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        import os

        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _form(path: Path, *, corrupt_digest: bool) -> tuple[dict[str, str], dict[str, tuple]]:
    data = path.read_bytes()
    name, version = path.name.split("-")[:2]
    digest = "0" * 64 if corrupt_digest else hashlib.sha256(data).hexdigest()
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": name,
        "version": version,
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "sha256_digest": digest,
    }
    return fields, {"content": (path.name, data, "application/octet-stream")}


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

        ports = [_free_port(), _free_port()]
        servers = [_start(env, port, tmp_path / f"server{i}.log") for i, port in enumerate(ports)]
        try:

            def upload(index: int) -> int:
                fields, files = _form(wheels[index], corrupt_digest=index % 6 == 5)
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
                _stop(process)

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
