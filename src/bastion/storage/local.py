"""Local-filesystem blob store: atomic writes (temp file in the same directory, fsync, rename)."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from bastion.storage.base import CHUNK_SIZE, BlobNotFound, StorageError, check_key, is_key


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def local_path(self, key: str) -> Path:
        """The file holding ``key`` (lets the web server send it with sendfile)."""
        return self._path(key)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _target(self, key: str) -> Path:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def make_directory(self, key: str) -> list[Path]:
        """Make the directory ``key`` will be stored in, ahead of the ``put``; returns the
        directories made, outermost first (see ``remove_directories``)."""
        missing: list[Path] = []
        made: list[Path] = []
        directory = self._path(key).parent
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
            except OSError:
                return

    def _write(self, key: str, fill: Callable[[BinaryIO], object]) -> None:
        target = self._target(key)
        descriptor, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        with _removed_on_failure(Path(temp_name)):
            with os.fdopen(descriptor, "wb") as handle:
                fill(handle)
                handle.flush()
                os.fsync(handle.fileno())
            _move_into_place(Path(temp_name), target)

    def put(self, key: str, source: Path, *, synced: bool = False) -> None:
        """``synced``: the caller made ``source`` durable already (``sync_file``), so a second
        name for it needs no fsync of its own."""
        try:
            if not self._put_linked(key, source, synced=synced):
                self._write(key, lambda handle: _copy_into(source, handle))
        except OSError as exc:
            raise StorageError(f"could not store {key}: {exc.strerror}") from exc

    def _put_linked(self, key: str, source: Path, *, synced: bool) -> bool:
        """Store ``source`` under ``key`` without copying it: a second name for the same file
        (the upload spool is in the data directory, usually on this file system), made durable
        and then renamed into place like any write. False when the file systems differ."""
        target = self._target(key)
        temp = target.parent / f".tmp-{secrets.token_hex(8)}"
        try:
            os.link(source, temp)
        except FileNotFoundError:
            if not source.exists():
                raise
            # The directory went meanwhile: made ahead by a refused upload of the same bytes,
            # which removed it again while empty (remove_directories). Made again, once.
            target = self._target(key)
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
            self._write(key, lambda handle: handle.write(data))
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
        try:
            self._path(key).unlink()
        except (FileNotFoundError, NotADirectoryError):
            pass  # not there (a file where a directory of the key would be: not there either)
        except OSError as exc:
            raise StorageError(f"could not remove {key}: {exc.strerror}") from exc

    def url(self, key: str) -> str | None:
        return None

    def entries(self) -> Iterator[tuple[str, datetime]]:
        if not self.root.is_dir():
            return
        for path in self.root.rglob("*"):
            key = path.relative_to(self.root).as_posix()
            if is_key(key) and not path.name.startswith(".tmp-"):  # (see _write)
                try:
                    modified = path.stat().st_mtime
                except FileNotFoundError:  # removed meanwhile
                    continue
                yield key, datetime.fromtimestamp(modified, UTC)


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
