"""The S3 blob store against a real S3 server: SeaweedFS, started by tests/s3server.py.

The blob-store contract (tests/unit/storage/contract.py) runs here unchanged, then what only S3
has: managed multipart uploads, pre-signed redirects, key prefixes, an unreachable endpoint.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from bastion.storage import BlobNotFound, StorageError, file_key, metadata_key, store_for_url
from bastion.storage.s3 import S3BlobStore
from tests.processes import free_ports
from tests.s3server import S3Server, new_bucket_name, shared_s3_server
from tests.unit.storage.contract import BlobStoreContract, key_for, read_all, unique_bytes

MiB = 1024 * 1024
MakeStore = Callable[..., S3BlobStore]  # make_store(prefix='', **query)


@pytest.fixture(scope="session")
def s3_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> S3Server:
    return shared_s3_server(request, tmp_path_factory)


def _aws_environ(monkeypatch: pytest.MonkeyPatch, server: S3Server) -> None:
    """Only the gateway's credentials: nothing from this machine's AWS configuration."""
    for variable in list(os.environ):
        if variable.startswith("AWS_"):
            monkeypatch.delenv(variable)
    for variable, value in server.environ().items():
        monkeypatch.setenv(variable, value)


@pytest.fixture(scope="module", autouse=True)
def aws_environ(s3_server: S3Server) -> Iterator[None]:
    # django-storages reads the key pair when the store is built; boto3 the region on first use.
    with pytest.MonkeyPatch.context() as monkeypatch:
        _aws_environ(monkeypatch, s3_server)
        yield


@pytest.fixture(scope="module")
def bucket(s3_server: S3Server, aws_environ: None) -> str:
    """A bucket of this module's own, created the way bastion does it (``ensure_bucket``)."""
    name = new_bucket_name("storage")
    S3BlobStore(s3_server.storage_url(name)).ensure_bucket()
    return name


@pytest.fixture(scope="module")
def make_store(s3_server: S3Server, bucket: str) -> MakeStore:
    def make(prefix: str = "", **query: str) -> S3BlobStore:
        store = store_for_url(s3_server.storage_url(bucket, prefix, **query))
        assert isinstance(store, S3BlobStore)
        return store

    return make


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False  # no proxy between us and the loopback gateway
        yield session


@pytest.fixture(scope="module")
def shared_store(make_store: MakeStore) -> S3BlobStore:
    # One store (one boto3 session, ~0.2 s to build) for the contract: every test's keys differ.
    return make_store()


class TestS3Contract(BlobStoreContract):
    @pytest.fixture
    def store(self, shared_store: S3BlobStore) -> S3BlobStore:
        return shared_store


# ---------------------------------------------------------------------------------------------
# What only S3 has


def test_ensure_bucket_is_idempotent(s3_server: S3Server) -> None:
    name = new_bucket_name("ensure")
    store = S3BlobStore(s3_server.storage_url(name))
    store.ensure_bucket()
    store.ensure_bucket()
    s3_server.client.head_bucket(Bucket=name)


def test_a_bucket_name_is_required() -> None:
    with pytest.raises(ValueError, match="needs a bucket name"):
        S3BlobStore("s3:///prefix-only?endpoint_url=http://127.0.0.1:9")


def test_20_mb_put_is_a_multipart_upload_that_round_trips(
    make_store: MakeStore, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(20 * MiB)
    source = tmp_path / "big-1.0-py3-none-any.whl"
    source.write_bytes(data)
    store = make_store("big")
    key = key_for(data, source.name)
    store.put(key, source)

    head = s3_server.client.head_object(Bucket=bucket, Key=f"big/{key}")
    assert head["ContentLength"] == len(data)
    # boto3's managed transfer splits at 8 MiB: 3 parts, and S3 marks such ETags "-<parts>".
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]

    assert store.size(key) == len(data)
    digest = hashlib.sha256()
    for chunk in store.read(key):
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()

    # Ranged reads, including ones that straddle the 8 MiB part boundaries.
    for start, length in [(0, 1), (8 * MiB - 3, 7), (16 * MiB - 1, MiB + 2), (20 * MiB - 5, 100)]:
        assert read_all(store, key, start=start, length=length) == data[start : start + length]
    assert read_all(store, key, start=19 * MiB) == data[19 * MiB :]


def test_keys_land_under_the_urls_prefix(
    make_store: MakeStore, s3_server: S3Server, bucket: str
) -> None:
    prefix = f"mirror-{secrets.token_hex(4)}/packages"
    store = make_store(prefix)
    data = unique_bytes(300)
    key = key_for(data)
    store.put_bytes(key, data)
    store.put_bytes(metadata_key(key), b"Name: demo\n")

    assert s3_server.keys(bucket, prefix=prefix.split("/")[0] + "/") == [
        f"{prefix}/{key}",
        f"{prefix}/{metadata_key(key)}",
    ]
    assert s3_server.keys(bucket, prefix=key) == [], "nothing at the bucket's root"
    # The same key without the prefix names another (absent) object.
    assert not make_store().exists(key)
    with pytest.raises(BlobNotFound):
        make_store("other-prefix").read(key)
    store.delete(key)
    assert s3_server.keys(bucket, prefix=prefix + "/") == [f"{prefix}/{metadata_key(key)}"]


def test_url_is_none_unless_redirect_is_asked_for(make_store: MakeStore) -> None:
    data = unique_bytes(50)
    key = key_for(data)
    make_store().put_bytes(key, data)
    assert make_store().url(key) is None
    assert make_store(redirect="0").url(key) is None


def test_presigned_url_downloads_the_bytes(
    make_store: MakeStore, s3_server: S3Server, http: requests.Session
) -> None:
    store = make_store("signed", redirect="1")
    data = unique_bytes(5000)
    key = file_key(hashlib.blake2b(data, digest_size=32).hexdigest(), "signed-1.0.tar.gz")
    store.put_bytes(key, data)

    url = store.url(key)
    assert url is not None
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == s3_server.endpoint_url
    assert parts.path.endswith(f"/signed/{key}")
    query = parse_qs(parts.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["300"]
    assert s3_server.access_key not in url.split("X-Amz-Credential=")[0]

    response = http.get(url, timeout=30)
    assert response.status_code == 200, response.text
    assert response.content == data
    ranged = http.get(url, headers={"Range": "bytes=100-199"}, timeout=30)
    assert ranged.status_code == 206
    assert ranged.content == data[100:200]

    # The signature is what grants access: altered, or left out, the gateway refuses.
    signature = query["X-Amz-Signature"][0]
    forged = url.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
    assert http.get(forged, timeout=30).status_code == 403
    assert http.get(f"{s3_server.endpoint_url}{parts.path}", timeout=30).status_code == 403


def test_an_unreachable_endpoint_is_a_storage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Nothing listens on this loopback port: connection refused, for real.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    (port,) = free_ports(1)
    store = S3BlobStore(f"s3://nowhere/?endpoint_url=http://127.0.0.1:{port}")
    key = key_for(b"unreachable")
    source = tmp_path / "in.whl"
    source.write_bytes(b"unreachable")
    calls: dict[str, Callable[[], object]] = {
        "put": lambda: store.put(key, source),
        "put_bytes": lambda: store.put_bytes(key, b"x"),
        "exists": lambda: store.exists(key),
        "size": lambda: store.size(key),
        "read": lambda: store.read(key),
        "delete": lambda: store.delete(key),
    }
    failures = {}
    for verb, call in calls.items():
        try:
            call()
        except StorageError:
            continue
        except Exception as exc:  # noqa: BLE001 - collected to report every verb at once
            failures[verb] = repr(exc)
        else:
            failures[verb] = "no error"
    assert failures == {}, "callers (uploads.services) only catch StorageError"
