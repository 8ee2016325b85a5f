"""Read an upload's multipart body: fields into memory, the distribution to a spool file.

The distribution is written to a temporary file under the data directory and hashed (sha256,
blake2b-256, md5) in the same pass; its size is bounded while it streams. The parser keeps the
part's file name exactly as sent (Django's parser would silently strip directories from it).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest
from django.http.multipartparser import MultiPartParser, MultiPartParserError

from bastion.core.dists import Hashes
from bastion.uploads.errors import UploadError, bad_request, too_large

FILE_FIELD = "content"
IGNORED_FILE_FIELDS = frozenset({"gpg_signature"})


@dataclass
class SpooledFile:
    path: Path
    filename: str
    content_type: str | None
    size: int
    hashes: Hashes

    def discard(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


@dataclass
class ParsedBody:
    fields: dict[str, list[str]]
    content: SpooledFile | None
    file_fields: list[str] = field(default_factory=list)  # non-file fields sent as files

    def discard(self) -> None:
        if self.content is not None:
            self.content.discard()


def spool_prefix(pid: int | None = None) -> str:
    """Spool files are named after the process writing them: ``upload-<pid>-...``."""
    return f"upload-{os.getpid() if pid is None else pid}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    try:  # a killed process not reaped yet (a zombie) is gone all the same
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def remove_abandoned_spool_files(spool_dir: Path) -> int:
    """Remove spool files whose process is gone (a worker killed mid-upload); ``bastion serve``
    calls this at start. The spool is local to one machine, so a process id says it all.
    Returns how many were removed."""
    removed = 0
    for path in spool_dir.glob("upload-*-*"):
        pid = path.name.split("-", 2)[1]
        if pid.isdigit() and not _alive(int(pid)):
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                pass
    return removed


class _HashingSpoolHandler(FileUploadHandler):
    """Spools the ``content`` part to disk, hashing it as it arrives; drops other file parts."""

    def __init__(self, spool_dir: Path, max_size: int) -> None:
        super().__init__()
        self.spool_dir = spool_dir
        self.max_size = max_size
        self.spooled: SpooledFile | None = None
        self.file_fields: list[str] = []
        self.duplicate_content = False
        self.exceeded = False
        self._handle: Any = None
        self._active = False

    def new_file(
        self,
        field_name: str,
        file_name: str,
        content_type: str,
        content_length: int | None,
        charset: str | None = None,
        content_type_extra: dict[str, str] | None = None,
    ) -> None:  # noqa: E501
        self._active = False
        if field_name != FILE_FIELD:
            if field_name not in IGNORED_FILE_FIELDS:
                self.file_fields.append(field_name)
            return
        if self._handle is not None or self.spooled is not None:
            self.duplicate_content = True
            return
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(dir=self.spool_dir, prefix=spool_prefix())
        self._handle = os.fdopen(descriptor, "wb")
        self._path = Path(name)
        self._name = file_name
        self._content_type = content_type or None
        self._size = 0
        self._sha256 = hashlib.sha256()
        self._blake2 = hashlib.blake2b(digest_size=32)
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._active = True

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        if not self._active:
            return None
        self._size += len(raw_data)
        if self._size > self.max_size:
            self.exceeded = True
            raise StopUpload(connection_reset=True)
        self._handle.write(raw_data)
        self._sha256.update(raw_data)
        self._blake2.update(raw_data)
        self._md5.update(raw_data)
        return None

    def file_complete(self, file_size: int) -> None:
        if not self._active:
            return None
        self._active = False
        self._handle.close()
        self._handle = None
        self.spooled = SpooledFile(
            path=self._path,
            filename=self._name,
            content_type=self._content_type,
            size=self._size,
            hashes=Hashes(
                sha256=self._sha256.hexdigest(),
                blake2b_256=self._blake2.hexdigest(),
                md5=self._md5.hexdigest(),
            ),
        )
        return None

    def cleanup(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            try:
                os.unlink(self._path)
            except FileNotFoundError:
                pass
        if self.spooled is not None:
            self.spooled.discard()
            self.spooled = None


class _VerbatimFileNameParser(MultiPartParser):
    def sanitize_file_name(self, file_name: str) -> str | None:
        # Keep the name exactly as sent; the upload protocol rejects names with path separators
        # or control characters instead of rewriting them.
        return file_name or None


def read_body(request: HttpRequest, *, spool_dir: Path, max_size: int) -> ParsedBody:
    """Parse the multipart body; UploadError on a malformed, oversized or unreadable body."""
    content_type = request.META.get("CONTENT_TYPE", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise bad_request(
            "upload.not-multipart",
            "The upload must be a multipart/form-data request.",
        )
    handler = _HashingSpoolHandler(spool_dir, max_size)
    try:
        parser = _VerbatimFileNameParser(request.META, request, [handler], request.encoding)
        post, _files = parser.parse()
    except (MultiPartParserError, ValueError) as exc:
        handler.cleanup()
        raise bad_request(
            "upload.malformed-body", f"Malformed multipart body: {exc}".rstrip(".") + "."
        ) from None
    except RequestDataTooBig:
        handler.cleanup()
        raise too_large(
            "upload.fields-too-large", "The upload's form fields are too large."
        ) from None
    except TooManyFieldsSent:
        handler.cleanup()
        raise bad_request(
            "upload.too-many-fields", "The upload has too many form fields."
        ) from None
    except UploadError:
        handler.cleanup()
        raise
    except TimeoutError:  # the client stopped sending (bastion serve's read timeout)
        handler.cleanup()
        raise UploadError(
            408, "upload.timeout", "The upload body stopped arriving; the request timed out."
        ) from None
    except BaseException:
        handler.cleanup()
        raise
    if handler.exceeded:
        handler.cleanup()
        raise too_large(
            "upload.file-too-large",
            f"File too large. Limit for this index is {max_size // (1024 * 1024)} MiB.",
        )
    if handler.duplicate_content:
        handler.cleanup()
        raise bad_request(
            "upload.multiple-files", "Upload exactly one distribution file per request."
        )
    if handler._handle is not None:  # the body ended inside the file part
        handler.cleanup()
        raise bad_request("upload.malformed-body", "Malformed multipart body: truncated file part.")
    fields = {key: post.getlist(key) for key in post}
    return ParsedBody(fields=fields, content=handler.spooled, file_fields=handler.file_fields)
