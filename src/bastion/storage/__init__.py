"""Blob storage behind a small protocol; the backend is chosen by BASTION_STORAGE_URL."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bastion.storage.base import BlobNotFound, BlobStore, StorageError, file_key, metadata_key

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "StorageError",
    "blob_store",
    "file_key",
    "metadata_key",
    "store_for_url",
]


def store_for_url(url: str) -> BlobStore:
    parts = urlsplit(url)
    if parts.scheme == "file":
        from bastion.storage.local import LocalBlobStore

        return LocalBlobStore(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        from bastion.storage.s3 import S3BlobStore

        return S3BlobStore(url)
    raise ValueError(f"unsupported storage URL scheme {parts.scheme!r}")


@lru_cache(maxsize=1)
def blob_store() -> BlobStore:
    from django.conf import settings

    return store_for_url(settings.BASTION.storage_url)
