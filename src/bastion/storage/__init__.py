"""Blob storage behind a small protocol; the backend is chosen by BASTION_STORAGE_URL."""

from __future__ import annotations

import threading
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

        if parts.netloc not in {"", "localhost"}:
            # file://data/files would silently mean /files on a host named "data".
            raise ValueError(f"storage URL {url!r} must be file:///absolute/path")

        return LocalBlobStore(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        from bastion.storage.s3 import S3BlobStore

        return S3BlobStore(url)
    raise ValueError(f"unsupported storage URL scheme {parts.scheme!r}")


_per_thread = threading.local()


def blob_store() -> BlobStore:
    """The configured store; one instance per thread (boto3 resources are not thread-safe)."""
    from django.conf import settings

    url = settings.BASTION.storage_url
    cached = getattr(_per_thread, "store", None)
    if cached is None or cached[0] != url:
        cached = (url, store_for_url(url))
        _per_thread.store = cached
    return cached[1]


def prepare_store(*, local_only: bool = False) -> None:
    """Create what the configured store needs: the bucket on S3, the directories on local disk
    (``LocalBlobStore.prepare``); run by ``bastion migrate`` and ``bastion serve``.
    ``local_only``: leave S3 alone (``serve --no-migrate`` starts while it is unreachable)."""
    from bastion.storage.local import LocalBlobStore

    store = blob_store()
    if isinstance(store, LocalBlobStore):
        store.prepare()
        return
    ensure = getattr(store, "ensure_bucket", None)
    if ensure is not None and not local_only:
        ensure()
