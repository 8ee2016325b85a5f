"""bastion on S3 storage, end to end: ``bastion serve`` with ``BASTION_STORAGE_URL=s3://...``
against a SeaweedFS gateway (tests/s3server.py), twine to publish, pip to download.

Two servers share one SQLite database and one bucket/prefix: the first streams file bytes out of
S3 itself, the second (``&redirect=1``) answers file URLs with a pre-signed S3 URL.
"""

from __future__ import annotations

import hashlib
import secrets
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from bastion.storage import file_key, metadata_key
from tests.e2e._support import (
    PYTHON,
    SERVER_STOP_GRACE,
    LiveServer,
    clean_environ,
    client_environ,
    describe,
    run,
    serve,
)
from tests.processes import free_ports, stop_process_group
from tests.s3server import S3Server, new_bucket_name, shared_s3_server
from tests.unit.core.builders import make_wheel

pytestmark = pytest.mark.e2e

PROJECT = "e2e-s3-demo"
PREFIX = "index/files"
HEALTH_TIMEOUT = 60.0  # generous: a loaded machine starts Django slowly


@pytest.fixture(scope="session")
def s3_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> S3Server:
    return shared_s3_server(request, tmp_path_factory)


@dataclass(frozen=True)
class Published:
    wheel: Path
    key: str  # the storage key bastion gave it (content-addressed)
    metadata: bytes  # the wheel's METADATA member

    @property
    def data(self) -> bytes:
        return self.wheel.read_bytes()


def _server_environ(s3: S3Server, data_dir: Path, port: int, storage_url: str) -> dict[str, str]:
    env = {key: value for key, value in clean_environ().items() if not key.startswith("AWS_")}
    env.update(s3.environ())
    env.update(
        {
            "BASTION_DATA_DIR": str(data_dir),
            "BASTION_BASE_URL": f"http://127.0.0.1:{port}",
            "BASTION_STORAGE_URL": storage_url,
            "BASTION_SECRET_KEY": "e2e-s3-" + secrets.token_urlsafe(40),
        }
    )
    return env


@pytest.fixture(scope="module")
def start_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., LiveServer]]:
    """Starts ``bastion serve`` on a free loopback port; every server is stopped at the end."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(*, label: str, data_dir: Path, env: dict[str, str], port: int) -> LiveServer:
        logs = tmp_path_factory.mktemp(f"logs-{label}")
        stderr_path = logs / "server.stderr.log"
        live = LiveServer(
            backend=label,
            base_url=f"http://127.0.0.1:{port}",
            data_dir=data_dir,
            env=env,
            stderr_path=stderr_path,
        )
        processes.append(serve(live, workers=1, timeout=HEALTH_TIMEOUT))
        return live

    try:
        yield start
    finally:
        for process in processes:
            stop_process_group(process, grace=SERVER_STOP_GRACE)


@pytest.fixture(scope="module")
def bucket(s3_server: S3Server) -> str:
    name = new_bucket_name("e2e")
    s3_server.client.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bastion-s3")


@pytest.fixture(scope="module")
def streaming(
    start_server: Callable[..., LiveServer],
    s3_server: S3Server,
    bucket: str,
    data_dir: Path,
) -> LiveServer:
    """The server that streams blobs out of S3; alice and her token are created through it."""
    (port,) = free_ports(1)
    url = s3_server.storage_url(bucket, PREFIX)
    live = start_server(
        label="s3",
        data_dir=data_dir,
        env=_server_environ(s3_server, data_dir, port, url),
        port=port,
    )
    live.cli_ok("user", "create", "alice", "--email", "alice@example.com")
    live.token = live.cli_ok("token", "create", "alice", "--name", "e2e-s3")
    assert live.token and "\n" not in live.token
    return live


@pytest.fixture(scope="module")
def redirecting(
    start_server: Callable[..., LiveServer],
    s3_server: S3Server,
    bucket: str,
    data_dir: Path,
    streaming: LiveServer,
) -> LiveServer:
    """A second server on the same database and bucket, answering file URLs with redirects."""
    (port,) = free_ports(1)
    url = s3_server.storage_url(bucket, PREFIX, redirect="1")
    env = _server_environ(s3_server, data_dir, port, url)
    env["BASTION_SECRET_KEY"] = streaming.env["BASTION_SECRET_KEY"]  # one deployment, two nodes
    return start_server(label="s3-redirect", data_dir=data_dir, env=env, port=port)


@pytest.fixture(scope="module")
def published(streaming: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Published:
    where = tmp_path_factory.mktemp("wheels")
    wheel = make_wheel(where, name=PROJECT, version="1.0")
    streaming.twine_ok(wheel)
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("e2e_s3_demo-1.0.dist-info/METADATA")
    digest = hashlib.blake2b(wheel.read_bytes(), digest_size=32).hexdigest()
    return Published(wheel=wheel, key=file_key(digest, wheel.name), metadata=metadata)


def _logs(*servers: LiveServer, s3: S3Server | None = None) -> str:
    parts = [f"--- bastion ({live.backend}) ---\n{live.server_log()[-3000:]}" for live in servers]
    if s3 is not None:
        parts.append(f"--- weed ---\n{s3.log_tail(3000)}")
    return "\n".join(parts)


def _pip_download(index: LiveServer, dest: Path) -> subprocess.CompletedProcess[str]:
    env = client_environ()  # PIP_CONFIG_FILE=/dev/null, no cache, no proxy to loopback
    return run(
        [
            PYTHON,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--index-url",
            index.simple_url,
            "--dest",
            str(dest),
            PROJECT,
        ],
        env=env,
        timeout=120,
    )


# ---------------------------------------------------------------------------------------------
# Streaming from S3


def test_upload_lands_in_the_bucket_under_the_prefix(
    streaming: LiveServer, published: Published, s3_server: S3Server, bucket: str
) -> None:
    assert s3_server.keys(bucket) == [
        f"{PREFIX}/{published.key}",
        f"{PREFIX}/{metadata_key(published.key)}",
    ], _logs(streaming, s3=s3_server)
    stored = s3_server.client.get_object(Bucket=bucket, Key=f"{PREFIX}/{published.key}")
    assert stored["Body"].read() == published.data
    assert streaming.stored_blobs() == set(), "nothing in the local file store"

    page = streaming.simple_json(PROJECT)
    assert page is not None
    (entry,) = page["files"]
    assert entry["url"].endswith("files/" + published.key)
    assert entry["hashes"]["sha256"] == hashlib.sha256(published.data).hexdigest()


def test_file_download_streams_the_exact_bytes(streaming: LiveServer, published: Published) -> None:
    response = streaming.get(f"/files/{published.key}")
    assert response.status_code == 200, _logs(streaming)
    assert response.content == published.data
    assert response.headers["Content-Length"] == str(len(published.data))
    assert response.headers["Accept-Ranges"] == "bytes"


def test_range_request_gets_206_and_the_slice(streaming: LiveServer, published: Published) -> None:
    size = len(published.data)
    response = streaming.get(f"/files/{published.key}", headers={"Range": "bytes=10-109"})
    assert response.status_code == 206, _logs(streaming)
    assert response.content == published.data[10:110]
    assert response.headers["Content-Range"] == f"bytes 10-109/{size}"
    tail = streaming.get(f"/files/{published.key}", headers={"Range": "bytes=-7"})
    assert tail.status_code == 206
    assert tail.content == published.data[-7:]
    beyond = streaming.get(f"/files/{published.key}", headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{size}"


def test_core_metadata_is_served_from_s3(streaming: LiveServer, published: Published) -> None:
    page = streaming.simple_json(PROJECT)
    assert page is not None
    (entry,) = page["files"]
    assert entry["core-metadata"] == {"sha256": hashlib.sha256(published.metadata).hexdigest()}
    response = streaming.get(f"/files/{published.key}.metadata")
    assert response.status_code == 200, _logs(streaming)
    assert response.content == published.metadata


def test_pip_downloads_the_wheel(
    streaming: LiveServer, published: Published, tmp_path: Path
) -> None:
    result = _pip_download(streaming, tmp_path)
    assert result.returncode == 0, describe(result) + "\n" + _logs(streaming)
    assert (tmp_path / published.wheel.name).read_bytes() == published.data


def test_a_missing_blob_is_a_404_not_a_crash(
    streaming: LiveServer, published: Published, s3_server: S3Server, bucket: str
) -> None:
    # Take the metadata blob away behind bastion's back, then put it back for the other tests.
    key = f"{PREFIX}/{metadata_key(published.key)}"
    s3_server.client.delete_object(Bucket=bucket, Key=key)
    try:
        response = streaming.get(f"/files/{published.key}.metadata")
        assert response.status_code == 404, _logs(streaming)
    finally:
        s3_server.client.put_object(Bucket=bucket, Key=key, Body=published.metadata)


# ---------------------------------------------------------------------------------------------
# Pre-signed redirects (redirect=1)


def test_redirect_server_answers_with_a_presigned_url(
    redirecting: LiveServer, published: Published, s3_server: S3Server, bucket: str
) -> None:
    response = redirecting.get(f"/files/{published.key}")
    assert response.status_code == 302, _logs(redirecting)
    location = response.headers["Location"]
    target = urlsplit(location)
    assert f"{target.scheme}://{target.netloc}" == s3_server.endpoint_url
    assert target.path == f"/{bucket}/{PREFIX}/{published.key}"
    assert "X-Amz-Signature=" in target.query
    assert response.headers["Cache-Control"] == "private, max-age=60"

    with requests.Session() as fresh:  # no cookies, no auth: the URL alone grants access
        fresh.trust_env = False
        fetched = fresh.get(location, timeout=30)
    assert fetched.status_code == 200, fetched.text
    assert fetched.content == published.data


def test_redirect_server_still_serves_metadata_itself(
    redirecting: LiveServer, published: Published
) -> None:
    response = redirecting.get(f"/files/{published.key}.metadata")
    assert response.status_code == 200, _logs(redirecting)
    assert response.content == published.metadata


def test_pip_follows_the_redirect(
    redirecting: LiveServer, published: Published, tmp_path: Path
) -> None:
    result = _pip_download(redirecting, tmp_path)
    assert result.returncode == 0, describe(result) + "\n" + _logs(redirecting)
    assert (tmp_path / published.wheel.name).read_bytes() == published.data
