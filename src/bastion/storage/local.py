"""Local-filesystem blob store: atomic writes (temp file in the same directory, fsync, rename).

On disk, the key ``ab/cd/<rest>/<name>`` is ``ab/cd<rest>/<name>``: the 256 directories of the
first level are made once (``prepare``), so storing a file makes one directory, its own. (Up to
2026-12 the layout followed the key, ``ab/cd/<rest>/<name>``: most uploads made three new
directories, each a wait for the file system's journal; ``prepare`` moves such files.)
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from bastion.storage.base import CHUNK_SIZE, BlobNotFound, StorageError, check_key, is_key

log = logging.getLogger(__name__)

_LAYOUT = "2"  # in the marker file once the store is prepared for this layout
_LAYOUT_MARKER = ".layout"
_FIRST_LEVEL = [f"{i:02x}" for i in range(256)]
_SECOND_LEVEL = re.compile(r"\A[0-9a-f]{2}\Z")  # of the previous layout
_REST = re.compile(r"\A[0-9a-f]{60}\Z")


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def local_path(self, key: str) -> Path:
        """The file holding ``key`` (lets the web server send it with sendfile)."""
        return self._path(key)

    def _path(self, key: str) -> Path:
        first, second, rest, name = check_key(key).split("/")
        return self.root / first / f"{second}{rest}" / name

    def prepare(self) -> None:
        """The first-level directories, and files stored in the previous layout moved to this
        one (by ``bastion migrate`` and ``bastion serve``; quick once done, see ``_LAYOUT``)."""
        marker = self.root / _LAYOUT_MARKER
        try:
            if marker.read_text(encoding="ascii").strip() == _LAYOUT:
                return
        except (FileNotFoundError, UnicodeDecodeError):
            pass
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for first in _FIRST_LEVEL:
                (self.root / first).mkdir(exist_ok=True)
            moved = _move_from_key_layout(self.root)
            self._write(marker, lambda handle: handle.write(f"{_LAYOUT}\n".encode("ascii")))
        except OSError as exc:
            raise StorageError(f"could not prepare {self.root}: {exc.strerror}") from exc
        if moved:
            log.warning("storage: moved %d files to the directory layout of this version", moved)

    def _target(self, key: str) -> Path:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def make_directory(self, key: str) -> list[Path]:
        """Make the directory ``key`` will be stored in, ahead of the ``put``; returns the
        directories made, outermost first (see ``remove_directories``). Usually one system
        call: the directories above it are made by ``prepare``."""
        directory = self._path(key).parent
        try:
            directory.mkdir()
        except FileExistsError:
            if directory.is_dir():
                return []  # made meanwhile by another upload: not ours to remove
        except OSError:
            pass  # a directory above it missing (or in the way): step by step, below
        else:
            return [directory]
        missing: list[Path] = []
        made: list[Path] = []
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            while directory != self.root and not directory.is_dir():
                missing.append(directory)
                directory = directory.parent
            for path in reversed(missing):
                try:
                    path.mkdir()
                except FileExistsError:
                    if not path.is_dir():
                        raise
                    continue  # made meanwhile by another upload: not ours to remove
                made.append(path)
        except OSError as exc:
            self.remove_directories(made)
            raise StorageError(f"could not store {key}: {exc.strerror}") from exc
        return made

    def remove_directories(self, made: list[Path]) -> None:
        """Remove the directories ``make_directory`` made, innermost first, while they are empty
        (another upload of the same bytes may be using one by then)."""
        for path in reversed(made):
            try:
                path.rmdir()
            except FileNotFoundError:
                continue  # removed with its last file (delete)
            except OSError:
                return

    def _begin(self, target: Path, fill: Callable[[BinaryIO], object]) -> PendingWrite:
        try:
            descriptor, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        except FileNotFoundError:  # usually made already (prepare, make_directory, a put)
            target.parent.mkdir(parents=True, exist_ok=True)
            descriptor, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        pending = PendingWrite(Path(temp_name), target, descriptor)
        try:
            with open(descriptor, "wb", closefd=False) as handle:
                fill(handle)
        except BaseException:
            pending.abort()
            raise
        return pending

    def _write(self, target: Path, fill: Callable[[BinaryIO], object]) -> None:
        pending = self._begin(target, fill)
        try:
            pending.sync()
            pending.finish()
        except BaseException:
            pending.abort()
            raise

    def put(self, key: str, source: Path, *, synced: bool = False) -> None:
        """``synced``: the caller makes ``source`` durable (an fsync of the same file) before
        anything refers to ``key``, so a second name for it needs no fsync of its own."""
        try:
            if not self._put_linked(key, source, synced=synced):
                self._write(self._path(key), lambda handle: _copy_into(source, handle))
        except OSError as exc:
            raise StorageError(f"could not store {key}: {exc.strerror}") from exc

    def _put_linked(self, key: str, source: Path, *, synced: bool) -> bool:
        """Store ``source`` under ``key`` without copying it: a second name for the same file
        (the upload spool is in the data directory, usually on this file system), made durable
        and then renamed into place like any write. False when the file systems differ."""
        target = self._path(key)
        temp = target.parent / f".tmp-{secrets.token_hex(8)}"
        try:
            try:
                os.link(source, temp)
            except FileNotFoundError:
                if not source.exists():
                    raise
                # No directory: not made ahead (make_directory), or removed while empty by a
                # refused upload of the same bytes or a delete. Made now, once.
                self._target(key)
                os.link(source, temp)
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                return False
            raise
        with _removed_on_failure(temp):
            if not synced:
                sync_file(temp)
            _move_into_place(temp, target)
        return True

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self._write(self._path(key), lambda handle: handle.write(data))
        except OSError as exc:
            raise StorageError(f"could not store {key}: {exc.strerror}") from exc

    def begin_bytes(self, key: str, data: bytes) -> PendingWrite:
        """``put_bytes`` in steps: written now, then ``sync`` (on any thread) and ``finish``."""
        try:
            return self._begin(self._path(key), lambda handle: handle.write(data))
        except OSError as exc:
            raise StorageError(f"could not store {key}: {exc.strerror}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def read(self, key: str, *, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        try:
            handle = open(self._path(key), "rb")
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        return _stream(handle, start, length)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            pass  # not there (a file where a directory of the key would be: not there either)
        except OSError as exc:
            raise StorageError(f"could not remove {key}: {exc.strerror}") from exc
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # the file's own directory, once its last file is gone

    def url(self, key: str) -> str | None:
        return None

    def entries(self) -> Iterator[tuple[str, datetime]]:
        if not self.root.is_dir():
            return
        for path in self.root.glob("*/*/*"):
            first, directory, name = path.relative_to(self.root).parts
            key = f"{first}/{directory[:2]}/{directory[2:]}/{name}"
            if is_key(key) and not name.startswith(".tmp-"):  # (see _write)
                try:
                    modified = path.stat().st_mtime
                except FileNotFoundError:  # removed meanwhile
                    continue
                yield key, datetime.fromtimestamp(modified, UTC)


class PendingWrite:
    """A file written to a temporary name beside its key: made durable by ``sync`` (one system
    call, so another thread can do it cheaply), then put in place by ``finish``; ``abort``
    removes it. Each step raises ``OSError``; a step after ``abort`` or ``finish`` does
    nothing."""

    def __init__(self, temp: Path, target: Path, descriptor: int) -> None:
        self._temp = temp
        self._target = target
        self._descriptor: int | None = descriptor

    def sync(self) -> None:
        if self._descriptor is not None:
            os.fsync(self._descriptor)

    def finish(self) -> None:
        if self._descriptor is not None:
            with _removed_on_failure(self._temp):
                self._close()
                _move_into_place(self._temp, self._target)

    def abort(self) -> None:
        if self._descriptor is not None:
            try:
                self._close()
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._temp)

    def _close(self) -> None:
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is not None:
            os.close(descriptor)


def _move_from_key_layout(root: Path) -> int:
    """Move each file's directory ``ab/cd/<rest>`` of the previous layout to ``ab/cd<rest>``
    (one rename each, the blob and its metadata file together); returns how many files moved.
    Interrupted, it goes on where it stopped when run again."""
    moved = 0
    for first in _FIRST_LEVEL:
        for second in sorted((root / first).iterdir()):
            if not (_SECOND_LEVEL.match(second.name) and second.is_dir()):
                continue  # this layout's directories (62 characters), or not bastion's
            for rest in sorted(second.iterdir()):
                if not (_REST.match(rest.name) and rest.is_dir()):
                    continue
                files = [p for p in rest.iterdir() if not p.name.startswith(".tmp-")]
                target = root / first / f"{second.name}{rest.name}"
                try:
                    os.rename(rest, target)  # (replaces an empty directory)
                except OSError as exc:
                    if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
                    for path in rest.iterdir():  # the same bytes under both: merged
                        os.replace(path, target / path.name)
                    rest.rmdir()
                moved += len(files)
            with contextlib.suppress(OSError):
                second.rmdir()  # unless something else is in it
    return moved


def sync_file(path: Path) -> None:
    """Make the bytes of the file at ``path`` durable (fsync)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _stream(handle: BinaryIO, start: int, length: int | None) -> Iterator[bytes]:
    with handle:
        if start:
            handle.seek(start)
        remaining = length
        while remaining is None or remaining > 0:
            size = CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining)
            chunk = handle.read(size)
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk


def _copy_into(source: Path, handle: BinaryIO) -> None:
    with open(source, "rb") as reader:
        shutil.copyfileobj(reader, handle, CHUNK_SIZE)


@contextlib.contextmanager
def _removed_on_failure(temp: Path) -> Iterator[None]:
    """A temporary file that does not reach its place is removed, whatever stopped it."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def _move_into_place(temp: Path, target: Path) -> None:
    """A durable temporary file becomes ``target`` atomically (readable by the web server)."""
    os.chmod(temp, 0o644)
    os.replace(temp, target)
