"""In-memory blob store for unit tests (end-to-end tests use the real backends)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from bastion.storage.base import BlobNotFound, check_key


class MemoryBlobStore:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put(self, key: str, source: Path) -> None:
        self.blobs[check_key(key)] = Path(source).read_bytes()

    def put_bytes(self, key: str, data: bytes) -> None:
        self.blobs[check_key(key)] = bytes(data)

    def exists(self, key: str) -> bool:
        return key in self.blobs

    def size(self, key: str) -> int:
        try:
            return len(self.blobs[key])
        except KeyError:
            raise BlobNotFound(key) from None

    def read(self, key: str, *, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        try:
            data = self.blobs[key]
        except KeyError:
            raise BlobNotFound(key) from None
        end = len(data) if length is None else start + length
        return iter([data[start:end]])

    def delete(self, key: str) -> None:
        self.blobs.pop(key, None)

    def url(self, key: str) -> str | None:
        return None
