"""In-memory blob store for unit tests (end-to-end tests use the real backends)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from bastion.storage.base import BlobNotFound, StorageError, check_key


class MemoryBlobStore:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.modified: dict[str, datetime] = {}

    def put(self, key: str, source: Path) -> None:
        check_key(key)
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise StorageError(f"could not store {key}: {exc.strerror}") from exc
        self.blobs[key] = data
        self.modified[key] = datetime.now(UTC)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.blobs[check_key(key)] = bytes(data)
        self.modified[key] = datetime.now(UTC)

    def exists(self, key: str) -> bool:
        return check_key(key) in self.blobs

    def size(self, key: str) -> int:
        try:
            return len(self.blobs[check_key(key)])
        except KeyError:
            raise BlobNotFound(key) from None

    def read(self, key: str, *, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        try:
            data = self.blobs[check_key(key)]
        except KeyError:
            raise BlobNotFound(key) from None
        end = len(data) if length is None else start + length
        return iter([data[start:end]])

    def delete(self, key: str) -> None:
        self.blobs.pop(check_key(key), None)
        self.modified.pop(key, None)

    def url(self, key: str) -> str | None:
        return None

    def entries(self) -> Iterator[tuple[str, datetime]]:
        for key in list(self.blobs):
            yield key, self.modified.get(key, datetime.now(UTC))
