"""S3-compatible blob store on django-storages' S3 backend (boto3 underneath).

Configured by ``BASTION_STORAGE_URL=s3://bucket/prefix?endpoint_url=http://host:port`` with the
usual ``AWS_*`` credentials in the environment. Optional query parameters: ``region``,
``redirect=1`` (answer file downloads with a pre-signed URL instead of streaming them),
``addressing_style`` (``path`` by default, which every S3-compatible server accepts).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from storages.backends.s3 import S3Storage

from bastion.storage.base import CHUNK_SIZE, BlobNotFound, StorageError, check_key, is_key


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _is_missing(exc: ClientError) -> bool:
    return _code(exc) in {"404", "NoSuchKey", "NotFound"}


class S3BlobStore:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if not parts.netloc:
            raise ValueError("BASTION_STORAGE_URL s3://bucket/prefix needs a bucket name")
        self.redirect = query.get("redirect", "0") in {"1", "true", "yes"}
        options: dict[str, object] = {
            "bucket_name": parts.netloc,
            "location": parts.path.strip("/"),
            "file_overwrite": True,
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": 300,
            "addressing_style": query.get("addressing_style", "path"),
            "signature_version": "s3v4",
        }
        if "endpoint_url" in query:
            options["endpoint_url"] = query["endpoint_url"]
        if "region" in query:
            options["region_name"] = query["region"]
        # An unreachable store is a quick 503 (bastion.outages), not a minute of retries: one
        # retry, a 5 s connect timeout (twine and uv retry a failed upload themselves).
        options["client_config"] = Config(
            s3={"addressing_style": options["addressing_style"]},
            signature_version="s3v4",
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 2, "mode": "standard"},
        )
        self._storage = S3Storage(**options)

    def _object(self, key: str):  # type: ignore[no-untyped-def]
        return self._storage.bucket.Object(self._storage._normalize_name(check_key(key)))

    def put(self, key: str, source: Path) -> None:
        # boto3's managed transfer: multipart for large files; the object appears only when
        # the upload completes, so readers never see a partial blob.
        try:
            self._object(key).upload_file(str(source))
        except (BotoCoreError, ClientError, OSError) as exc:  # OSError: the source is unreadable
            raise StorageError(f"could not store {key}: {exc}") from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self._object(key).put(Body=data)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"could not store {key}: {exc}") from exc

    def exists(self, key: str) -> bool:
        try:
            self._object(key).load()
        except ClientError as exc:
            if _is_missing(exc):
                return False
            raise StorageError(f"could not look up {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"could not look up {key}: {exc}") from exc
        return True

    def size(self, key: str) -> int:
        try:
            obj = self._object(key)
            obj.load()
            return int(obj.content_length)
        except ClientError as exc:
            if _is_missing(exc):
                raise BlobNotFound(key) from None
            raise StorageError(f"could not look up {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"could not look up {key}: {exc}") from exc

    def read(self, key: str, *, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        if length == 0:
            # "bytes=N-(N-1)" is no valid range, and servers answer it with the whole object.
            self.size(key)  # BlobNotFound if absent, like any other read
            return iter(())
        arguments: dict[str, str] = {}
        if start or length is not None:
            end = "" if length is None else str(start + length - 1)
            arguments["Range"] = f"bytes={start}-{end}"
        try:
            body = self._object(key).get(**arguments)["Body"]
        except ClientError as exc:
            if _is_missing(exc):
                raise BlobNotFound(key) from None
            if _code(exc) == "InvalidRange":  # start at or past the end: nothing to read
                return iter(())
            raise StorageError(f"could not read {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"could not read {key}: {exc}") from exc
        return _chunks(body)

    def delete(self, key: str) -> None:
        try:
            self._object(key).delete()
        except ClientError as exc:
            if not _is_missing(exc):
                raise StorageError(f"could not delete {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"could not delete {key}: {exc}") from exc

    def url(self, key: str) -> str | None:
        if not self.redirect:
            return None
        return str(self._storage.url(check_key(key)))

    def entries(self) -> Iterator[tuple[str, datetime]]:
        location = self._storage.location.strip("/")
        prefix = location + "/" if location else ""
        try:
            for item in self._storage.bucket.objects.filter(Prefix=prefix):
                key = item.key[len(prefix) :]
                if is_key(key):
                    modified = item.last_modified
                    if modified.tzinfo is None:
                        modified = modified.replace(tzinfo=UTC)
                    yield key, modified
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"could not list the bucket: {exc}") from exc

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (``bastion migrate`` and ``serve`` call this)."""
        bucket = self._storage.bucket
        try:
            bucket.meta.client.head_bucket(Bucket=bucket.name)
            return
        except ClientError as exc:
            if not _is_missing(exc) and "NoSuchBucket" not in str(exc):
                raise StorageError(f"cannot use bucket {bucket.name!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot reach the S3 endpoint: {exc}") from exc
        try:
            bucket.create()
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot create bucket {bucket.name!r}: {exc}") from exc


def _chunks(body) -> Iterator[bytes]:  # type: ignore[no-untyped-def]
    try:
        yield from body.iter_chunks(CHUNK_SIZE)
    finally:
        body.close()
