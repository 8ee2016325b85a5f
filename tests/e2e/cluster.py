"""A bastion cluster for fault tests: real processes the test may stop, kill and restart.

* ``RedisProcess``: a private ``redis-server`` on a free loopback port (no persistence).
* ``SeaweedFSProcess``: a private SeaweedFS S3 gateway (tests/s3server.py's command line) whose
  ports and data directory stay the same across ``stop()`` / ``start()``.
* ``PostgresProcess``: a private PostgreSQL cluster (``initdb`` / ``pg_ctl`` from
  /usr/lib/postgresql/*/bin, run as user ``postgres`` when the tests run as root).
* ``Cluster``: two ``bastion serve --no-migrate`` nodes after one ``bastion migrate``, each with
  its own data directory (nodes keep nothing but the upload spool locally), sharing the
  database, the bucket, Redis and the secret key. ``kill(n)`` is ``kill -9`` of node n's whole
  process group (the gunicorn master and its workers); ``start(n)`` brings it back.

Shared by the module's tests; whatever a test stops it restarts in a ``finally`` block.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tests.e2e._support import BASTION, SERVER_STOP_GRACE, LiveServer, clean_environ, serve
from tests.processes import LOOPBACK, free_port, free_ports, stop_process_group
from tests.s3server import (
    REGION,
    S3Server,
    SeaweedFSError,
    _remove_grpc_sockets,
    _wait_ready,
    _write_identities,
    weed_command,
)

NODE_START_TIMEOUT = 60.0


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout:.0f} s")


# ---------------------------------------------------------------------------------------------
# Redis


@dataclass
class RedisProcess:
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> None:
        assert self.process is None
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                binary,
                "--port", str(self.port),
                "--bind", LOOPBACK,
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        _wait_for_port(self.port, self.process, "redis-server", 20)

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process, grace=5)
            self.process = None


# ---------------------------------------------------------------------------------------------
# SeaweedFS


class SeaweedFSProcess:
    """Like ``tests.s3server.seaweedfs``, but stoppable and restartable on the same ports."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "data").mkdir()
        (directory / "tmp").mkdir()
        self.directory = directory
        names = ["master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3"]
        self.ports = dict(zip([*names, "s3_grpc"], free_ports(len(names) + 1), strict=True))
        self.config_path = directory / "s3-identities.json"
        access_key = "BASTIONTEST" + secrets.token_hex(6).upper()
        secret_key = secrets.token_urlsafe(30)
        _write_identities(self.config_path, access_key, secret_key)
        self.server = S3Server(
            endpoint_url=f"http://{LOOPBACK}:{self.ports['s3']}",
            access_key=access_key,
            secret_key=secret_key,
            directory=directory,
            log_path=directory / "weed.log",
            region=REGION,
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        assert self.process is None
        env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        env["TMPDIR"] = str(self.directory / "tmp")
        with self.server.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                # A single master needs no raft history: resuming it would hold a restart
                # up for a 20 s election; the volumes and the filer keep the data.
                [*weed_command(self.directory, self.config_path, self.ports),
                 "-master.resumeState=false"],
                cwd=self.directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            _wait_ready(self.server, self.process, timeout)
        except SeaweedFSError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process, grace=2)
            self.process = None
            _remove_grpc_sockets(self.ports)


# ---------------------------------------------------------------------------------------------
# PostgreSQL


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"no {name} under /usr/lib/postgresql/*/bin")
    return found[-1]


class PostgresProcess:
    """A private PostgreSQL cluster; initdb and pg_ctl refuse root, so as root they run as the
    ``postgres`` user in a directory it owns (outside pytest's root-only temporary tree)."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="bastion-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            owner = pwd.getpwnam("postgres")
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
        self._run(
            _postgres_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "--no-sync", "-E", "UTF8", "--locale", "C",
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self._as, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")

    def start(self) -> None:
        # fsync off is safe here: the test kills the server process, never the machine, and
        # the kernel keeps what was written. synchronous_commit must stay on: with it off, a
        # commit already acknowledged (an upload that returned 200) is lost by `-m immediate`.
        options = (
            f"-p {self.port} -c listen_addresses={LOOPBACK} -k {self.directory} "
            "-c fsync=off -c full_page_writes=off"
        )
        self._run(
            _postgres_bin("pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.directory / "postgres.log"), "-w", "-t", "60", "start",
        )

    def stop(self) -> None:
        """Immediate shutdown: clients see their connections cut, as in a crash or fail-over."""
        self._run(_postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def running(self) -> bool:
        result = subprocess.run(
            [*self._as, _postgres_bin("pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True, timeout=30, check=False,
        )
        return result.returncode == 0

    def remove(self) -> None:
        with contextlib.suppress(RuntimeError):
            if self.running():
                self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# The cluster


@dataclass
class Cluster:
    database_url: str
    s3: SeaweedFSProcess
    bucket: str
    redis: RedisProcess
    root: Path
    nodes: list[LiveServer] = field(default_factory=list)
    token: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ports = free_ports(2)
        env = {key: value for key, value in clean_environ().items() if not key.startswith("AWS_")}
        env.update(self.s3.server.environ())
        env.update(
            BASTION_DATABASE_URL=self.database_url,
            BASTION_STORAGE_URL=self.s3.server.storage_url(self.bucket, "files"),
            BASTION_REDIS_URL=self.redis.url,
            BASTION_SECRET_KEY="cluster-" + secrets.token_urlsafe(40),
            BASTION_BASE_URL=f"http://{LOOPBACK}:{ports[0]}",  # the load balancer's address
            BASTION_DATA_DIR=str(self.root / "admin"),
            # signed metadata (TUF): `set_up` runs `bastion tuf init` into this directory
            BASTION_TUF_ONLINE_KEY=f"file2:{self.root / 'tuf-keys' / 'online.pem'}",
        )
        self.env = env
        for number, port in enumerate(ports):
            data_dir = self.root / f"node{number}"
            data_dir.mkdir(parents=True)
            node_env = dict(env, BASTION_DATA_DIR=str(data_dir))
            self.nodes.append(
                LiveServer(
                    backend=f"node{number}",
                    base_url=f"http://{LOOPBACK}:{port}",
                    data_dir=data_dir,
                    env=node_env,
                    stderr_path=data_dir / "server.stderr.log",
                )
            )

    def cli(self, *args: str, input: str | None = None) -> str:
        result = subprocess.run(
            [BASTION, *args], env=self.env, input=input, capture_output=True, text=True,
            timeout=120, check=False,
        )
        assert result.returncode == 0, f"bastion {' '.join(args)}: {result.stderr}"
        return result.stdout.strip()

    def set_up(self) -> None:
        """Migrate once, sign the repository (TUF), create alice and her token, start both
        nodes."""
        self.cli("migrate")
        self.cli(
            "tuf", "init", "--keys-dir", str(self.root / "tuf-keys"), "--root-keys", "1",
            "--root-threshold", "1", "--bins", "16",
        )
        self.cli("user", "create", "alice", "--email", "alice@example.com")
        self.token = self.cli("token", "create", "alice", "--name", "cluster")
        for node in self.nodes:
            node.token = self.token
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:  # both start at once
            list(pool.map(self.start, range(len(self.nodes))))

    def start(self, number: int) -> None:
        node = self.nodes[number]
        assert node.process is None or node.process.poll() is not None
        serve(node, workers=1, timeout=NODE_START_TIMEOUT, extra=["--no-migrate"])

    def kill(self, number: int) -> None:
        """``kill -9`` of the node: its master and workers at once, no clean-up of any kind."""
        process = self.nodes[number].process
        assert process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def ensure_running(self, number: int) -> None:
        process = self.nodes[number].process
        if process is None or process.poll() is not None:
            self.start(number)

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None:
                stop_process_group(node.process, grace=SERVER_STOP_GRACE)
            node.close()

    # --- looking behind bastion's back ------------------------------------------------------

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, connect_timeout=5, autocommit=True) as db:
            return list(db.execute(sql, params).fetchall())

    def file_rows(self, filename: str) -> int:
        rows = self.query("SELECT count(*) FROM projects_file WHERE filename = %s", filename)
        return int(rows[0][0])

    def events_naming(self, filename: str) -> list[str]:
        """Kinds of the audit events whose payload names ``filename``."""
        rows = self.query(
            "SELECT kind FROM audit_event WHERE payload->>'filename' = %s ORDER BY seq", filename
        )
        return [kind for (kind,) in rows]

    def objects(self) -> list[str]:
        return self.s3.server.keys(self.bucket)

    def objects_named(self, filename: str) -> list[str]:
        return [key for key in self.objects() if key.rsplit("/", 1)[-1].startswith(filename)]
