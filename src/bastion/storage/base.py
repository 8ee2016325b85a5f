"""The blob-store protocol: the index's only seam to where distribution bytes live.

Keys are built by :func:`file_key` only from a file's blake2b-256 digest and its validated file
name, so a key can never name anything outside the store.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Protocol

CHUNK_SIZE = 256 * 1024
_KEY = re.compile(r"\A[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{60}/[A-Za-z0-9._+!-]{1,255}\Z")


class StorageError(Exception):
    """The store could not do what was asked (I/O or service failure)."""


class BlobNotFound(StorageError):
    pass


def file_key(blake2_256: str, filename: str) -> str:
    """``ab/cd/<rest of digest>/<filename>``, as PyPI lays out /packages/."""
    key = f"{blake2_256[:2]}/{blake2_256[2:4]}/{blake2_256[4:]}/{filename}"
    check_key(key)
    return key


def metadata_key(key: str) -> str:
    return key + ".metadata"


def is_key(name: str) -> bool:
    """Whether ``name`` is a key bastion could have made (listings skip anything else)."""
    try:
        check_key(name)
    except ValueError:
        return False
    return True


def check_key(key: str) -> str:
    base = key[: -len(".metadata")] if key.endswith(".metadata") else key
    # The file name pattern admits "." and ".." (dots are legal in file names); as a path
    # component either one would name a directory instead of a file.
    if not _KEY.match(base) or base.rsplit("/", 1)[1] in {".", ".."}:
        raise ValueError(f"not a valid storage key: {key!r}")
    return key


class BlobStore(Protocol):
    """Where blobs live. Implementations: local files, S3, memory (tests)."""

    def put(self, key: str, source: Path) -> None:
        """Store the file at ``source`` under ``key`` atomically (all or nothing)."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically."""

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int:
        """Byte length of the blob; BlobNotFound if absent."""

    def read(self, key: str, *, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream ``length`` bytes (to the end when None) from ``start``; BlobNotFound if absent."""

    def delete(self, key: str) -> None:
        """Remove the blob; absent is not an error."""

    def url(self, key: str) -> str | None:
        """A URL a client may fetch the blob from directly, or None to stream it ourselves."""

    def entries(self) -> Iterator[tuple[str, datetime]]:
        """Every blob's key and last modification (aware, UTC), in no particular order; only
        names that are valid keys (a half-written temporary file or a stranger is not one).
        For ``bastion storage sweep``."""
