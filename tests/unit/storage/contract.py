"""The blob-store contract (``bastion.storage.base.BlobStore``), written once for every backend.

A test module subclasses :class:`BlobStoreContract` and provides a ``store`` fixture; the unit
suite runs it over the local and in-memory stores, the integration suite over S3 (SeaweedFS).
Anything a caller (``uploads.services``, ``index.views.file_download``) relies on belongs here.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import pytest

from bastion.storage import BlobNotFound, BlobStore, StorageError, file_key, metadata_key
from bastion.storage.base import CHUNK_SIZE

# Shapes every verb must refuse before touching the backend (traversal, wrong digest, ...).
DIGEST = "0123456789abcdef" * 4
INVALID_KEYS = [
    pytest.param(f"{DIGEST[:2]}/{DIGEST[2:4]}/{DIGEST[4:]}/..", id="dot-dot-filename"),
    pytest.param(f"/{DIGEST[:2]}/{DIGEST[2:4]}/{DIGEST[4:]}/a.whl", id="absolute"),
    pytest.param(f"{DIGEST[:2]}/{DIGEST[2:4]}/{DIGEST[4:]}/a\\..\\b.whl", id="backslash"),
    pytest.param(f"{DIGEST[:2]}/{DIGEST[2:4]}/{DIGEST[4:]}/a\x00.whl", id="nul"),
    pytest.param(f"{DIGEST[:2]}/{DIGEST[2:4]}/{DIGEST[4:-1]}/a.whl", id="short-digest"),
    pytest.param("../../../../etc/passwd", id="traversal"),
    pytest.param("", id="empty"),
]


def digest_of(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def key_for(data: bytes, filename: str = "demo-1.0-py3-none-any.whl") -> str:
    """The key an upload of ``data`` gets (content-addressed, so unique per test's bytes)."""
    return file_key(digest_of(data), filename)


def unique_bytes(size: int) -> bytes:
    """``size`` bytes no other test stores (a random head, then a cheap pattern)."""
    head = secrets.token_bytes(min(size, 32))
    return head + bytes(index % 251 for index in range(size - len(head)))


def read_all(store: BlobStore, key: str, **kwargs: int | None) -> bytes:
    return b"".join(store.read(key, **kwargs))  # type: ignore[arg-type]


class BlobStoreContract:
    """Subclasses provide the ``store`` fixture (a fresh or isolated store per test)."""

    # -- put / put_bytes / exists / size / read ----------------------------------------------

    def test_put_bytes_round_trips(self, store: BlobStore) -> None:
        data = unique_bytes(1000)
        key = key_for(data)
        assert not store.exists(key)
        store.put_bytes(key, data)
        assert store.exists(key)
        assert store.size(key) == len(data)
        assert read_all(store, key) == data

    def test_put_from_a_file_round_trips(self, store: BlobStore, tmp_path: Path) -> None:
        data = unique_bytes(3 * CHUNK_SIZE + 17)  # several chunks, the last one partial
        source = tmp_path / "upload.bin"
        source.write_bytes(data)
        key = key_for(data)
        store.put(key, source)
        assert source.read_bytes() == data, "the source is left as it was"
        assert store.size(key) == len(data)
        chunks = list(store.read(key))
        assert all(isinstance(chunk, bytes) for chunk in chunks)
        assert b"".join(chunks) == data

    def test_empty_blob(self, store: BlobStore) -> None:
        key = key_for(secrets.token_bytes(16), "empty.tar.gz")
        store.put_bytes(key, b"")
        assert store.exists(key)
        assert store.size(key) == 0
        assert read_all(store, key) == b""
        assert read_all(store, key, start=0, length=0) == b""

    def test_put_replaces_what_the_key_held(self, store: BlobStore) -> None:
        key = key_for(secrets.token_bytes(16))
        store.put_bytes(key, b"first version, longer than the second")
        store.put_bytes(key, b"second")
        assert read_all(store, key) == b"second"
        assert store.size(key) == 6

    def test_metadata_key_is_a_separate_blob(self, store: BlobStore) -> None:
        data = unique_bytes(200)
        key = key_for(data)
        store.put_bytes(key, data)
        store.put_bytes(metadata_key(key), b"Metadata-Version: 2.4\n")
        assert read_all(store, metadata_key(key)) == b"Metadata-Version: 2.4\n"
        store.delete(metadata_key(key))
        assert not store.exists(metadata_key(key))
        assert read_all(store, key) == data

    # -- ranged reads (index.views serves Range requests with these) --------------------------

    @pytest.mark.parametrize(
        ("start", "length", "expected"),
        [
            pytest.param(0, None, slice(0, None), id="whole"),
            pytest.param(10, None, slice(10, None), id="from-start-to-end"),
            pytest.param(10, 5, slice(10, 15), id="start-and-length"),
            pytest.param(0, 1, slice(0, 1), id="first-byte"),
            pytest.param(999, 1, slice(999, 1000), id="last-byte"),
            pytest.param(990, 50, slice(990, 1000), id="length-past-the-end"),
            pytest.param(1000, None, slice(0, 0), id="start-at-the-end"),
            pytest.param(5000, 10, slice(0, 0), id="start-beyond-the-end"),
            pytest.param(10, 0, slice(0, 0), id="zero-length"),
        ],
    )
    def test_ranged_read(
        self, store: BlobStore, start: int, length: int | None, expected: slice
    ) -> None:
        data = unique_bytes(1000)
        key = key_for(data)
        store.put_bytes(key, data)
        assert read_all(store, key, start=start, length=length) == data[expected]

    def test_ranged_read_across_chunk_boundaries(self, store: BlobStore) -> None:
        data = unique_bytes(2 * CHUNK_SIZE + 100)
        key = key_for(data)
        store.put_bytes(key, data)
        start, length = CHUNK_SIZE - 10, CHUNK_SIZE + 20
        assert read_all(store, key, start=start, length=length) == data[start : start + length]

    # -- absent blobs ---------------------------------------------------------------------------

    def test_absent_blob(self, store: BlobStore) -> None:
        key = key_for(secrets.token_bytes(16))
        assert store.exists(key) is False
        with pytest.raises(BlobNotFound):
            store.size(key)
        # Raised by the call itself, not when iterating: file_download catches it before it
        # starts a streaming response.
        with pytest.raises(BlobNotFound):
            store.read(key)
        with pytest.raises(BlobNotFound):
            store.read(key, start=3, length=4)
        assert issubclass(BlobNotFound, StorageError)

    def test_delete_is_idempotent(self, store: BlobStore) -> None:
        data = unique_bytes(100)
        key = key_for(data)
        store.delete(key)  # never stored: not an error
        store.put_bytes(key, data)
        store.delete(key)
        assert not store.exists(key)
        with pytest.raises(BlobNotFound):
            store.size(key)
        store.delete(key)  # again

    # -- failures ---------------------------------------------------------------------------------

    def test_put_of_a_missing_source_stores_nothing(self, store: BlobStore, tmp_path: Path) -> None:
        key = key_for(secrets.token_bytes(16))
        with pytest.raises(StorageError):
            store.put(key, tmp_path / "vanished.whl")
        assert not store.exists(key)

    @pytest.mark.parametrize("key", INVALID_KEYS)
    def test_every_verb_refuses_an_invalid_key(
        self, store: BlobStore, key: str, tmp_path: Path
    ) -> None:
        source = tmp_path / "x"
        source.write_bytes(b"x")
        with pytest.raises(ValueError, match="not a valid storage key"):
            store.put(key, source)
        with pytest.raises(ValueError, match="not a valid storage key"):
            store.put_bytes(key, b"x")
        with pytest.raises(ValueError, match="not a valid storage key"):
            store.exists(key)
        with pytest.raises(ValueError, match="not a valid storage key"):
            store.size(key)
        with pytest.raises(ValueError, match="not a valid storage key"):
            store.read(key)
        with pytest.raises(ValueError, match="not a valid storage key"):
            store.delete(key)

    def test_entries_list_blobs_with_their_modification_time(self, store: BlobStore) -> None:
        from datetime import UTC, datetime, timedelta

        data = unique_bytes(100)
        key = key_for(data)
        before = datetime.now(UTC) - timedelta(minutes=5)
        store.put_bytes(key, data)
        store.put_bytes(metadata_key(key), b"Metadata-Version: 2.1\n")
        listed = dict(store.entries())
        assert {key, metadata_key(key)} <= set(listed)
        assert before <= listed[key] <= datetime.now(UTC) + timedelta(minutes=5)
        store.delete(key)
        store.delete(metadata_key(key))
        assert key not in dict(store.entries())

    def test_no_direct_url_by_default(self, store: BlobStore) -> None:
        data = unique_bytes(10)
        key = key_for(data)
        store.put_bytes(key, data)
        assert store.url(key) is None


__all__ = [
    "BlobStoreContract",
    "DIGEST",
    "INVALID_KEYS",
    "digest_of",
    "key_for",
    "read_all",
    "unique_bytes",
]
