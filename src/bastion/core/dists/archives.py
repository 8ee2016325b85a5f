"""Step 2: archive framing. Is the file really the archive its extension says, within limits?

Nothing is ever extracted to disk. Members are listed from the archive's own directory (zip) or
by walking the headers of the decompressed stream (tar), and read in bounded chunks on request.
A tar is read through :class:`_BoundedStream`, which caps the decompressed stream (P109 size and
compression ratio) and the size of any single read, since ``tarfile`` reads pax and GNU
long-name records into memory whole.
"""

from __future__ import annotations

import gzip
import io
import lzma
import os
import tarfile
import zipfile
import zlib
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import IO, Literal

from bastion.core.dists.errors import DistProblem, shown
from bastion.core.dists.limits import Limits

__all__ = ["Archive", "ArchiveKind", "ArchiveMember", "MemberTooLarge", "open_archive"]

ArchiveKind = Literal["zip", "tar.gz"]

_CHUNK_BYTES = 64 * 1024
_TAR_BLOCK = 512
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")  # first local header; empty archive
_GZIP_MAGIC = b"\x1f\x8b"
_OTHER_COMPRESSION_MAGIC = (b"BZh", b"\xfd7zXZ\x00")

# What a corrupt archive can raise while it is opened or read. Listed, never ``except:``.
_ZIP_ERRORS: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,  # also bad CRC
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,  # includes UnicodeDecodeError of a member name
    NotImplementedError,  # unknown compression method
    RuntimeError,  # encrypted member
)
_TAR_ERRORS: tuple[type[Exception], ...] = (
    tarfile.TarError,
    zlib.error,
    EOFError,  # gzip stream ends early
    OSError,  # includes gzip.BadGzipFile
    ValueError,
)


@dataclass(frozen=True)
class ArchiveMember:
    """One entry of an archive, as its directory declares it."""

    path: str
    #: Declared uncompressed size in bytes.
    size: int
    #: A regular file (not a directory, link or device).
    is_file: bool


class MemberTooLarge(Exception):
    """A member is larger than the caller's bound; it was not read past the bound."""


class Archive(ABC):
    """An open archive: its members (in archive order) and bounded reads of their content."""

    def __init__(self, members: Iterable[ArchiveMember], problems: Iterable[DistProblem]) -> None:
        self.members: tuple[ArchiveMember, ...] = tuple(members)
        #: Framing problems that do not stop validation (duplicates, unsafe paths).
        self.problems: tuple[DistProblem, ...] = tuple(problems)
        self._counts = Counter(member.path for member in self.members)

    def count(self, path: str) -> int:
        """How many members have exactly ``path``."""
        return self._counts[path]

    def get(self, path: str) -> ArchiveMember | None:
        """The first member with ``path``, or ``None``."""
        for member in self.members:
            if member.path == path:
                return member
        return None

    def read(self, path: str, *, max_bytes: int) -> bytes:
        """The exact content of the regular file ``path``, read in bounded chunks.

        Raises :class:`MemberTooLarge` beyond ``max_bytes`` (declared or actual), ``KeyError`` if
        there is no such file, and :class:`DistProblem` (``dist.archive.unreadable``) if its
        content is corrupt.
        """
        member = self.get(path)
        if member is None or not member.is_file:
            raise KeyError(path)
        if member.size > max_bytes:
            raise MemberTooLarge(path)
        return self._read(path, max_bytes)

    @abstractmethod
    def _read(self, path: str, max_bytes: int) -> bytes: ...


def _read_bounded(stream: IO[bytes], max_bytes: int, path: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while chunk := stream.read(_CHUNK_BYTES):
        total += len(chunk)
        if total > max_bytes:
            raise MemberTooLarge(path)
        chunks.append(chunk)
    return b"".join(chunks)


@contextmanager
def open_archive(
    path: os.PathLike[str] | str, *, kind: ArchiveKind, limits: Limits
) -> Iterator[Archive]:
    """Open and frame-check the archive at ``path``.

    Raises :class:`DistProblem` when the file cannot be used as that kind of archive at all
    (wrong type, unreadable, over a limit); smaller problems are in ``Archive.problems``.
    """
    file_size = os.stat(path).st_size
    if file_size == 0:
        raise DistProblem("dist.archive.unreadable", "The file is empty.")
    with ExitStack() as stack:
        raw = stack.enter_context(open(path, "rb"))
        head = raw.read(_TAR_BLOCK)
        raw.seek(0)
        if kind == "zip":
            archive: Archive = _open_zip(raw, head, file_size, limits, stack)
        else:
            archive = _open_tar(raw, head, file_size, limits, stack)
        yield archive


# -- zip (wheels) ------------------------------------------------------------------------------


class _ZipArchive(Archive):
    def __init__(self, zip_file: zipfile.ZipFile, problems: Iterable[DistProblem]) -> None:
        self._zip = zip_file
        members = (
            ArchiveMember(path=info.filename, size=info.file_size, is_file=not info.is_dir())
            for info in zip_file.infolist()
        )
        super().__init__(members, problems)

    def _read(self, path: str, max_bytes: int) -> bytes:
        info = next(info for info in self._zip.infolist() if info.filename == path)
        try:
            with self._zip.open(info) as stream:
                return _read_bounded(stream, max_bytes, path)
        except _ZIP_ERRORS as error:
            raise _unreadable(f"Member {shown(path)} cannot be read", error) from error


def _open_zip(
    raw: IO[bytes], head: bytes, file_size: int, limits: Limits, stack: ExitStack
) -> Archive:
    wrong_type = "a wheel (.whl) must be a ZIP archive"
    if _looks_like_tar(head):
        raise DistProblem(
            "dist.archive.wrong-type", f"The file is a tar archive, but {wrong_type}."
        )
    if not head.startswith(_ZIP_SIGNATURES):
        raise DistProblem(
            "dist.archive.wrong-type",
            f"The file does not start with a ZIP entry; {wrong_type}.",
        )
    if not zipfile.is_zipfile(raw):
        raise DistProblem(
            "dist.archive.unreadable",
            "The ZIP archive is truncated or corrupt (no end of central directory).",
        )
    try:
        zip_file = stack.enter_context(zipfile.ZipFile(raw))
        infos = zip_file.infolist()
    except _ZIP_ERRORS as error:
        raise _unreadable("The ZIP archive is corrupt", error) from error

    _check_member_count(len(infos), limits)
    total = sum(info.file_size for info in infos)
    _check_total_size(total, file_size, limits)
    paths = [info.filename for info in infos]
    return _ZipArchive(zip_file, _path_problems(paths, duplicates=paths))


# -- gzipped tar (sdists) ----------------------------------------------------------------------


class _TarArchive(Archive):
    def __init__(
        self,
        tar: tarfile.TarFile,
        infos: list[tarfile.TarInfo],
        problems: Iterable[DistProblem],
    ) -> None:
        self._tar = tar
        self._infos = infos
        members = (
            ArchiveMember(path=info.name, size=info.size, is_file=info.isreg()) for info in infos
        )
        super().__init__(members, problems)

    def _read(self, path: str, max_bytes: int) -> bytes:
        info = next(info for info in self._infos if info.name == path)
        try:
            stream = self._tar.extractfile(info)
            if stream is None:  # pragma: no cover - read() only lets regular files through
                raise KeyError(path)
            with stream:
                return _read_bounded(stream, max_bytes, path)
        except _StreamLimitExceeded as exceeded:
            raise exceeded.problem from None
        except _TAR_ERRORS as error:
            raise _unreadable(f"Member {shown(path)} cannot be read", error) from error


def _open_tar(
    raw: IO[bytes], head: bytes, file_size: int, limits: Limits, stack: ExitStack
) -> Archive:
    wrong_type = "a source distribution (.tar.gz) must be a gzip-compressed tar archive"
    if head.startswith(_ZIP_SIGNATURES) or zipfile.is_zipfile(raw):
        raise DistProblem(
            "dist.archive.wrong-type", f"The file is a ZIP archive, but {wrong_type}."
        )
    raw.seek(0)
    if not head.startswith(_GZIP_MAGIC):
        if _looks_like_tar(head):
            detail = "The file is an uncompressed or differently compressed tar archive"
        else:
            detail = "The file is not gzip-compressed"
        raise DistProblem("dist.archive.wrong-type", f"{detail}, but {wrong_type}.")

    gzip_file = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
    stream = _BoundedStream(gzip_file, file_size=file_size, limits=limits)
    try:
        tar = stack.enter_context(tarfile.open(fileobj=stream, mode="r:"))
        infos = _list_tar_members(tar, limits)
        _check_tar_end(tar, stream)
    except _StreamLimitExceeded as exceeded:
        raise exceeded.problem from None
    except _TAR_ERRORS as error:
        raise _unreadable(
            "The gzip-compressed tar archive is corrupt or truncated", error
        ) from error

    _check_total_size(sum(info.size for info in infos), file_size, limits)
    _check_total_size(stream.tell(), file_size, limits)
    paths = [info.name for info in infos]
    file_paths = [info.name for info in infos if info.isreg()]
    return _TarArchive(tar, infos, _path_problems(paths, duplicates=file_paths))


def _list_tar_members(tar: tarfile.TarFile, limits: Limits) -> list[tarfile.TarInfo]:
    """Walk the member headers without reading member data into memory."""
    infos: list[tarfile.TarInfo] = []
    declared_total = 0
    while (info := tar.next()) is not None:
        infos.append(info)
        _check_member_count(len(infos), limits)
        declared_total += info.size
        # Checked before tarfile skips over this member's data.
        if declared_total > limits.max_uncompressed_bytes:
            raise _too_large(declared_total, limits)
    return infos


def _check_tar_end(tar: tarfile.TarFile, stream: _BoundedStream) -> None:
    """After the last member, only zero blocks may follow (up to the end of the gzip stream).

    ``tarfile`` silently stops at the first header it cannot parse; anything non-zero there
    means a corrupt header, possibly hiding members from us that another tool would see.
    Reading to the end also makes gzip check its CRC, so truncation is caught.
    """
    start, data = stream.last_read
    if start == tar.offset and data.count(0) != len(data):
        raise tarfile.ReadError("a member header is corrupt")
    while chunk := stream.read(_CHUNK_BYTES):
        if chunk.count(0) != len(chunk):
            raise tarfile.ReadError("there is data after the end of the archive")


class _StreamLimitExceeded(Exception):
    def __init__(self, problem: DistProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _BoundedStream:
    """A read/seek/tell view of the decompressed tar stream with hard bounds.

    * position never goes past ``cap`` (max uncompressed size, or the compression-ratio bound);
    * no single ``read`` is larger than ``max_tar_header_bytes`` (tarfile reads pax and GNU
      long-name records whole).
    """

    mode = "rb"

    def __init__(self, source: gzip.GzipFile, *, file_size: int, limits: Limits) -> None:
        self._source = source
        ratio_cap = max(
            limits.compression_ratio_threshold_bytes, limits.max_compression_ratio * file_size
        )
        self._over_cap: Callable[[int], DistProblem]
        if ratio_cap < limits.max_uncompressed_bytes:
            self._cap = ratio_cap
            self._over_cap = lambda size: _too_compressed(size, file_size, limits)
        else:
            self._cap = limits.max_uncompressed_bytes
            self._over_cap = lambda size: _too_large(size, limits)
        self._max_read = max(limits.max_tar_header_bytes, _CHUNK_BYTES)
        #: (offset, data) of the latest read, to inspect the block tarfile stopped at.
        self.last_read: tuple[int, bytes] = (0, b"")

    def read(self, size: int = -1, /) -> bytes:
        if size < 0 or size > self._max_read:
            raise _StreamLimitExceeded(
                DistProblem(
                    "dist.archive.too-large",
                    f"A tar header record is larger than {self._max_read} bytes.",
                )
            )
        start = self._source.tell()
        data = self._source.read(size)
        if start + len(data) > self._cap:
            raise _StreamLimitExceeded(self._over_cap(start + len(data)))
        self.last_read = (start, data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        if whence != io.SEEK_SET:
            raise io.UnsupportedOperation("only absolute seeks are supported")
        if offset > self._cap:
            raise _StreamLimitExceeded(self._over_cap(offset))
        return self._source.seek(offset)

    def tell(self) -> int:
        return self._source.tell()

    def seekable(self) -> bool:
        return True

    def write(self, data: bytes, /) -> int:
        raise io.UnsupportedOperation("read-only")

    def close(self) -> None:
        """The gzip stream and the file belong to the caller's ``ExitStack``."""


# -- shared checks -----------------------------------------------------------------------------


def _looks_like_tar(head: bytes) -> bool:
    """Compressed data, or a first block whose tar header checksum is valid."""
    if head.startswith(_GZIP_MAGIC) or head.startswith(_OTHER_COMPRESSION_MAGIC):
        return True
    if len(head) < _TAR_BLOCK:
        return False
    field = head[148:156].replace(b"\x00", b" ").strip()
    try:
        recorded = int(field, 8)
    except ValueError:
        return False
    unsigned = sum(head[:148]) + 8 * ord(" ") + sum(head[156:_TAR_BLOCK])
    signed = sum(b - 256 if b > 127 else b for b in head[:148] + head[156:_TAR_BLOCK]) + 256
    return recorded in (unsigned, signed)


def _check_member_count(count: int, limits: Limits) -> None:
    if count > limits.max_members:
        raise DistProblem(
            "dist.archive.too-many-members",
            f"The archive has more than {limits.max_members} members.",
        )


def _check_total_size(total: int, file_size: int, limits: Limits) -> None:
    if total > limits.max_uncompressed_bytes:
        raise _too_large(total, limits)
    # P109: the ratio is only enforced above the threshold, as PyPI does.
    if (
        total > limits.compression_ratio_threshold_bytes
        and total > limits.max_compression_ratio * file_size
    ):
        raise _too_compressed(total, file_size, limits)


def _too_large(total: int, limits: Limits) -> DistProblem:
    return DistProblem(
        "dist.archive.too-large",
        f"The archive's uncompressed size is over {total} bytes; "
        f"at most {limits.max_uncompressed_bytes} are allowed.",
    )


def _too_compressed(total: int, file_size: int, limits: Limits) -> DistProblem:
    return DistProblem(
        "dist.archive.too-compressed",
        f"The archive decompresses from {file_size} to over {total} bytes, a ratio above "
        f"{limits.max_compression_ratio}; it looks like a decompression bomb.",
    )


def _path_problems(paths: list[str], *, duplicates: list[str]) -> list[DistProblem]:
    problems: list[DistProblem] = []
    for path, count in Counter(duplicates).items():
        if count > 1:
            problems.append(
                DistProblem(
                    "dist.archive.duplicate-member",
                    f"The archive contains {shown(path)} {count} times.",
                )
            )
    for path in paths:
        parts = path.replace("\\", "/").split("/")
        if path.startswith(("/", "\\")) or ".." in parts:
            problems.append(
                DistProblem(
                    "dist.archive.unsafe-path",
                    f"The archive member {shown(path)} has an absolute path or a '..' component.",
                )
            )
    return problems


def _unreadable(what: str, error: BaseException) -> DistProblem:
    detail = str(error) or type(error).__name__
    return DistProblem("dist.archive.unreadable", f"{what}: {detail}.")
