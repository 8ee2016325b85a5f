"""Read an upload's multipart body: fields into memory, the distribution to a spool file.

The distribution is written to a temporary file under the data directory and hashed (sha256,
blake2b-256, md5) in the same pass; its size is bounded while it streams. The part's file name
is kept exactly as sent (Django's parser would silently strip directories from it); the upload
protocol then refuses what is wrong with it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import multipart
from django.conf import settings
from django.core.signals import request_finished
from django.http import HttpRequest

from bastion.core.dists import Hashes
from bastion.uploads.errors import UploadError, bad_request, too_large

log = logging.getLogger(__name__)

FILE_FIELD = "content"
IGNORED_FILE_FIELDS = frozenset({"gpg_signature"})
_READ_SIZE = 256 * 1024


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


def _new_spool_file(spool_dir: Path) -> tuple[int, str]:
    try:
        return tempfile.mkstemp(dir=spool_dir, prefix=spool_prefix())
    except FileNotFoundError:  # made by bastion serve; made again if removed meanwhile
        spool_dir.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(dir=spool_dir, prefix=spool_prefix())


class _SpareFiles:
    """Spool files whose inode is made ahead of the uploads that will write them.

    A new file costs the file system a new inode (the spool file becomes the stored file, so
    its inode is never freed for the next one): ~20 µs where the directory's block group has
    free inodes, but 250-500 µs of kernel time measured where it had none left (this machine's
    /tmp, where the benchmark keeps every server's data), all of it in the upload's answer.

    So the thread of an upload that took a spare makes the next one once its answer has left
    (``replenish``, on Django's ``request_finished``), while the client is busy with what it
    sends next. A spare is an unnamed file (``O_TMPFILE``): nothing of it is seen in the spool
    directory, and the kernel frees it with the process that made it. It gets its spool file
    name when an upload takes it. An upload that finds none (the first of a process, one of
    several at once, a file system without unnamed files) makes its own file, as before."""

    KEEP = 1  # unnamed files kept ready per process

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: list[tuple[Path, int]] = []  # (spool directory, descriptor)
        self._wanted: Path | None = None  # a spool directory whose spare was taken

    def take(self, spool_dir: Path) -> tuple[int, str]:
        """An open, empty spool file in ``spool_dir`` (descriptor, path), yours to write."""
        with self._lock:
            self._wanted = spool_dir
            ready = self._ready.pop() if self._ready else None
        if ready is not None:
            directory, descriptor = ready
            if directory == spool_dir:
                path = str(spool_dir / f"{spool_prefix()}{secrets.token_hex(6)}")
                try:  # the unnamed file gets its name (linkat through /proc)
                    os.link(f"/proc/self/fd/{descriptor}", path, follow_symlinks=True)
                except OSError:
                    pass  # no /proc, or the directory went away: a file made now instead
                else:
                    return descriptor, path
            os.close(descriptor)  # (unnamed: closing it frees it)
        return _new_spool_file(spool_dir)

    def replenish(self) -> None:
        """Make the spare a ``take`` used, if any (on the thread of the request that ends)."""
        with self._lock:
            spool_dir, self._wanted = self._wanted, None
            if spool_dir is None or len(self._ready) >= self.KEEP or not _UNNAMED:
                return
        try:
            descriptor = os.open(spool_dir, _UNNAMED | os.O_RDWR | os.O_CLOEXEC, 0o600)
        except OSError as exc:  # the upload that needs one makes its own, as before
            log.debug("no unnamed spool file made ahead: %s", exc)
            return
        with self._lock:
            if len(self._ready) < self.KEEP:
                self._ready.append((spool_dir, descriptor))
                return
        os.close(descriptor)

    def forget_after_fork(self) -> None:
        """In a forked child: the parent's files are the parent's."""
        for _directory, descriptor in self._ready:
            os.close(descriptor)
        self._lock = threading.Lock()
        self._ready = []
        self._wanted = None


_UNNAMED = getattr(os, "O_TMPFILE", 0)  # Linux


_spares = _SpareFiles()
os.register_at_fork(after_in_child=_spares.forget_after_fork)


def _replenish(**_kwargs: object) -> None:
    _spares.replenish()


request_finished.connect(_replenish, dispatch_uid="bastion.uploads.spool.replenish")


class _Parts:
    """Receives the parser's events: fields into memory, the ``content`` part to a spool file
    (hashed as it arrives, its size bounded), other file parts dropped."""

    def __init__(self, spool_dir: Path, max_size: int) -> None:
        self.spool_dir = spool_dir
        self.max_size = max_size
        # Read once: a setting read through django.conf.settings costs a lazy-object look-up.
        self.max_field_bytes = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        self.max_fields = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        self.fields: dict[str, list[str]] = {}
        self.spooled: SpooledFile | None = None
        self.file_fields: list[str] = []
        self._field_count = 0
        self._field_bytes = 0
        self._name = ""
        self._kind = ""  # "field", "content" or "" (a part that is dropped)
        self._value: list[bytes] = []
        self._handle: Any = None
        self._path: Path | None = None

    def feed(self, event: multipart.MultipartSegment | bytes | None) -> None:
        if isinstance(event, multipart.MultipartSegment):
            self._begin(event)
        elif event is None:
            self._end()
        elif self._kind == "field":
            self._field_bytes += len(event)
            if self._field_bytes > self.max_field_bytes:
                raise too_large(
                    "upload.fields-too-large", "The upload's form fields are too large."
                )
            self._value.append(event)
        elif self._kind == "content":
            self._write(event)

    def _begin(self, segment: multipart.MultipartSegment) -> None:
        name = segment.name or ""
        self._name, self._kind, self._value = name, "", []
        if segment.filename is None:
            self._field_count += 1
            if self._field_count > self.max_fields:
                raise bad_request("upload.too-many-fields", "The upload has too many form fields.")
            self._field_bytes += len(name)
            self._kind = "field"
            return
        if not segment.filename:
            return  # a file part without a file name carries no file (as browsers send it)
        if name != FILE_FIELD:
            if name not in IGNORED_FILE_FIELDS:
                self.file_fields.append(name)
            return
        if self._handle is not None or self.spooled is not None:
            raise bad_request(
                "upload.multiple-files", "Upload exactly one distribution file per request."
            )
        descriptor, temp_name = _spares.take(self.spool_dir)
        self._handle = os.fdopen(descriptor, "wb")
        self._path = Path(temp_name)
        # Kept exactly as sent: the upload protocol rejects names with path separators or
        # control characters instead of rewriting them.
        self._filename = segment.filename
        self._content_type = segment.content_type or None
        self._size = 0
        self._sha256 = hashlib.sha256()
        self._blake2 = hashlib.blake2b(digest_size=32)
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._kind = "content"

    def _write(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self.max_size:
            raise too_large(
                "upload.file-too-large",
                f"File too large. Limit for this index is {self.max_size // (1024 * 1024)} MiB.",
            )
        self._handle.write(data)
        self._sha256.update(data)
        self._blake2.update(data)
        self._md5.update(data)

    def _end(self) -> None:
        if self._kind == "field":
            value = b"".join(self._value).decode("utf-8", errors="replace")
            self.fields.setdefault(self._name, []).append(value)
        elif self._kind == "content":
            self._handle.close()
            self._handle = None
            assert self._path is not None
            self.spooled = SpooledFile(
                path=self._path,
                filename=self._filename,
                content_type=self._content_type,
                size=self._size,
                hashes=Hashes(
                    sha256=self._sha256.hexdigest(),
                    blake2b_256=self._blake2.hexdigest(),
                    md5=self._md5.hexdigest(),
                ),
            )
        self._kind, self._value = "", []

    def cleanup(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            if self._path is not None:
                try:
                    os.unlink(self._path)
                except FileNotFoundError:
                    pass
        if self.spooled is not None:
            self.spooled.discard()
            self.spooled = None


def _malformed(reason: str) -> UploadError:
    return bad_request(
        "upload.malformed-body", f"Malformed multipart body: {reason}".rstrip(".") + "."
    )


def read_body(request: HttpRequest, *, spool_dir: Path, max_size: int) -> ParsedBody:
    """Parse the multipart body; UploadError on a malformed, oversized or unreadable body.

    Parsed by ``multipart``'s push parser as the body arrives (Django's own parser took about
    1.5 ms of an upload's time for the fields alone, measured with bench/upload_profile.py).
    """
    content_type = request.META.get("CONTENT_TYPE", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise bad_request(
            "upload.not-multipart",
            "The upload must be a multipart/form-data request.",
        )
    boundary = multipart.parse_options_header(content_type)[1].get("boundary", "")
    if not boundary:
        raise _malformed("the Content-Type header has no boundary")
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit():
        raise _malformed(f"invalid Content-Length {declared[:40]!r}")
    remaining = int(declared)
    if remaining == 0:
        return ParsedBody(fields={}, content=None)
    parts = _Parts(spool_dir, max_size)
    try:
        parser = multipart.PushMultipartParser(
            boundary,
            content_length=remaining,
            max_segment_count=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 16,
        )
        while remaining > 0:
            chunk = request.read(min(_READ_SIZE, remaining))
            if not chunk:
                break  # the body ended early: close() says the stream is incomplete
            remaining -= len(chunk)
            for event in parser.parse(chunk):
                parts.feed(event)
        parser.close()
    except multipart.MultipartError as exc:
        parts.cleanup()
        raise _malformed(str(exc)) from None
    except TimeoutError:  # the client stopped sending (bastion serve's read timeout)
        parts.cleanup()
        raise UploadError(
            408, "upload.timeout", "The upload body stopped arriving; the request timed out."
        ) from None
    except BaseException:
        parts.cleanup()
        raise
    return ParsedBody(fields=parts.fields, content=parts.spooled, file_fields=parts.file_fields)
