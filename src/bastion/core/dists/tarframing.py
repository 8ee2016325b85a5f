"""gzip + tar framing for sdists (P94, P95, P109).

The tar is read through :class:`_BoundedStream`, which caps the decompressed stream (P109 size
and compression ratio -- the gzip-bomb guard PyPI lacks) and the size of any single read, since
``tarfile`` reads pax and GNU long-name records into memory whole. The member headers are
walked once; members named in ``capture`` (``PKG-INFO``) are read on the way, so nothing is
decompressed twice.

Member rules (PEP 721 ``data`` filter semantics, decided without extracting):

* regular files, directories and links only: devices, FIFOs and unknown types are rejected
  (``dist.archive.special-member``), and so are GNU and pax sparse members (``dist.tar.sparse``,
  P109: PEP 625 does not allow them);
* **links are allowed when they stay inside the sdist's top-level directory**, resolved
  lexically from where they sit: a symlink's target relative to its directory, a hard link's
  target relative to the archive root and naming an earlier regular file. Anything absolute,
  escaping, or dangling is ``dist.archive.unsafe-link``, as is any member whose path runs
  *through* a symlink member (the classic "write through a planted link" attack). Internal
  links are kept because real sdists ship them (a ``README`` linked into a package directory)
  and extracting them with ``filter="data"`` is safe;
* after the end-of-archive marker only zero blocks may follow (``dist.tar.trailing-data``);
  a header ``tarfile`` cannot parse, which would silently end its listing and hide members
  behind it, makes the archive unreadable.
"""

from __future__ import annotations

import gzip
import io
import posixpath
import tarfile
import zlib
from collections.abc import Callable
from contextlib import ExitStack
from typing import IO, Final

from bastion.core.dists.archives import (
    Archive,
    ArchiveMember,
    MemberTooLarge,
    check_member_count,
    check_total_size,
    duplicate_problem,
    has_control_characters,
    name_problem,
    too_compressed,
    too_large,
    unreadable,
)
from bastion.core.dists.errors import DistProblem, shown
from bastion.core.dists.limits import Limits

__all__ = ["open_tar"]

_CHUNK_BYTES: Final = 64 * 1024
_SKIP_BYTES: Final = 1024 * 1024
_ALLOWED_TYPES: Final = frozenset(
    {
        tarfile.REGTYPE,
        tarfile.AREGTYPE,
        tarfile.CONTTYPE,
        tarfile.DIRTYPE,
        tarfile.SYMTYPE,
        tarfile.LNKTYPE,
    }  # fmt: skip
)
# What a corrupt archive can raise while it is opened or read. Listed, never ``except:``.
_TAR_ERRORS: tuple[type[Exception], ...] = (
    tarfile.TarError,
    zlib.error,
    EOFError,  # gzip stream ends early
    OSError,  # includes gzip.BadGzipFile
    ValueError,
)


class _TarArchive(Archive):
    def __init__(
        self,
        tar: tarfile.TarFile,
        infos: list[tarfile.TarInfo],
        captured: dict[str, bytes],
        problems: list[DistProblem],
    ) -> None:
        self._tar = tar
        self._infos = {info.name: info for info in reversed(infos)}  # first one wins
        self._captured = captured
        members = (
            ArchiveMember(path=info.name, size=info.size, is_file=info.isreg(), is_dir=info.isdir())
            for info in infos
        )
        super().__init__(members, problems)

    def _read(self, path: str, max_bytes: int) -> bytes:
        if path in self._captured:
            return self._captured[path]
        # Not captured while walking: seek back (gzip decompresses from the start again).
        info = self._infos[path]
        try:
            return _read_member(self._tar, info, max_bytes)
        except _StreamLimitExceeded as exceeded:
            raise exceeded.problem from None
        except _TAR_ERRORS as error:
            raise unreadable(f"Member {shown(path)} cannot be read", error) from error


def open_tar(
    raw: IO[bytes],
    head: bytes,
    file_size: int,
    limits: Limits,
    stack: ExitStack,
    capture: frozenset[str],
) -> Archive:
    """Walk the gzip-compressed tar once; raise :class:`DistProblem` if it is unusable."""
    gzip_file = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
    stream = _BoundedStream(gzip_file, file_size=file_size, limits=limits)
    captured: dict[str, bytes] = {}
    try:
        tar = stack.enter_context(tarfile.open(fileobj=stream, mode="r:"))
        infos = _walk_members(tar, limits, capture, captured)
        _check_tar_end(tar, stream)
    except _StreamLimitExceeded as exceeded:
        raise exceeded.problem from None
    except _TrailingData as trailing:
        raise DistProblem("dist.tar.trailing-data", str(trailing)) from None
    except _TAR_ERRORS as error:
        what = "The gzip-compressed tar archive is corrupt or truncated"
        raise unreadable(what, error) from error

    check_total_size(sum(info.size for info in infos), file_size, limits)
    check_total_size(stream.tell(), file_size, limits)
    problems = _member_problems(infos)
    problems += _global_header_problems(tar)
    return _TarArchive(tar, infos, captured, problems)


def _walk_members(
    tar: tarfile.TarFile, limits: Limits, capture: frozenset[str], captured: dict[str, bytes]
) -> list[tarfile.TarInfo]:
    """Walk the member headers, reading only the members to capture."""
    infos: list[tarfile.TarInfo] = []
    declared_total = 0
    while (info := tar.next()) is not None:
        infos.append(info)
        check_member_count(len(infos), limits)
        declared_total += info.size
        # Checked before tarfile skips over this member's data.
        if declared_total > limits.max_uncompressed_bytes:
            raise too_large(declared_total, limits)
        if (
            info.name in capture
            and info.name not in captured
            and info.isreg()
            and info.size <= limits.max_metadata_bytes
        ):
            captured[info.name] = _read_member(tar, info, limits.max_metadata_bytes)
    return infos


def _read_member(tar: tarfile.TarFile, info: tarfile.TarInfo, max_bytes: int) -> bytes:
    stream = tar.extractfile(info)
    if stream is None:  # pragma: no cover - only regular files are read
        raise KeyError(info.name)
    chunks: list[bytes] = []
    total = 0
    with stream:
        while chunk := stream.read(_CHUNK_BYTES):
            total += len(chunk)
            if total > max_bytes:
                raise MemberTooLarge(info.name)
            chunks.append(chunk)
    return b"".join(chunks)


class _TrailingData(Exception):
    pass


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
            raise _TrailingData(
                "There is data after the end of the tar archive (past its end-of-archive "
                "marker), where other tools might find more members."
            )


# -- member rules -------------------------------------------------------------------------------


def _member_problems(infos: list[tarfile.TarInfo]) -> list[DistProblem]:
    problems: list[DistProblem] = []
    file_counts: dict[str, int] = {}
    regular_so_far: set[str] = set()
    symlinks: set[str] = set()
    for info in infos:
        name = info.name
        if (problem := name_problem(name)) is not None:
            problems.append(problem)
        if info.issparse() or any(key.startswith("GNU.sparse.") for key in info.pax_headers):
            problems.append(
                DistProblem("dist.tar.sparse", f"Member {shown(name)} is a sparse file.")
            )
        elif info.type not in _ALLOWED_TYPES:
            problems.append(
                DistProblem(
                    "dist.archive.special-member",
                    f"Member {shown(name)} is a device, FIFO or other special file "
                    f"(tar type {info.type!r}).",
                )
            )
        elif info.issym() or info.islnk():
            if (problem := _link_problem(info, regular_so_far)) is not None:
                problems.append(problem)
        if info.issym():
            symlinks.add(name)
        if not info.isdir():
            file_counts[name] = file_counts.get(name, 0) + 1
        if info.isreg():
            regular_so_far.add(name)
    problems += [duplicate_problem(name, n) for name, n in file_counts.items() if n > 1]
    if symlinks:
        problems += _through_symlink_problems(infos, symlinks)
    return problems


def _link_problem(info: tarfile.TarInfo, regular_so_far: set[str]) -> DistProblem | None:
    name, target = info.name, info.linkname
    top = name.split("/", 1)[0]
    if info.issym():
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    else:
        resolved = posixpath.normpath(target)
    unsafe = (
        not target
        or target.startswith("/")
        or "\\" in target
        or has_control_characters(target)
        or not (resolved == top or resolved.startswith(top + "/"))
    )
    if not unsafe and info.islnk() and resolved not in regular_so_far:
        unsafe = True  # a hard link must name an earlier regular file (tar semantics)
    if not unsafe:
        return None
    kind = "symbolic" if info.issym() else "hard"
    return DistProblem(
        "dist.archive.unsafe-link",
        f"Member {shown(name)} is a {kind} link to {shown(target)}, outside the sdist's "
        f"top-level directory {shown(top)} (or to nothing).",
    )


def _through_symlink_problems(
    infos: list[tarfile.TarInfo], symlinks: set[str]
) -> list[DistProblem]:
    problems: list[DistProblem] = []
    for info in infos:
        parent = posixpath.dirname(info.name)
        while parent:
            if parent in symlinks:
                problems.append(
                    DistProblem(
                        "dist.archive.unsafe-link",
                        f"Member {shown(info.name)} lies inside {shown(parent)}, which is a "
                        "symbolic link: extracting it would write wherever the link points.",
                    )
                )
                break
            parent = posixpath.dirname(parent)
    return problems


def _global_header_problems(tar: tarfile.TarFile) -> list[DistProblem]:
    """A pax global header may rename every following member for some tools and not others."""
    keys = set(tar.pax_headers) & {"path", "linkpath", "size", "uname", "gname"}
    if not keys & {"path", "linkpath"}:
        return []
    return [
        DistProblem(
            "dist.archive.unsafe-path",
            "The tar archive has a pax global header setting member paths "
            f"({', '.join(sorted(keys))}).",
        )
    ]


# -- bounded decompression ----------------------------------------------------------------------


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
            self._over_cap = lambda size: too_compressed(size, file_size, limits)
        else:
            self._cap = limits.max_uncompressed_bytes
            self._over_cap = lambda size: too_large(size, limits)
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
        # Skipping forward means decompressing; GzipFile.seek does it 8 KiB at a time, this
        # a megabyte at a time. (Backwards, gzip must start over from the beginning.)
        position = self._source.tell()
        while position < offset:
            skipped = len(self._source.read(min(offset - position, _SKIP_BYTES)))
            if not skipped:
                break
            position += skipped
        return self._source.seek(offset)

    def tell(self) -> int:
        return self._source.tell()

    def seekable(self) -> bool:
        return True

    def write(self, data: bytes, /) -> int:
        raise io.UnsupportedOperation("read-only")

    def close(self) -> None:
        """The gzip stream and the file belong to the caller's ``ExitStack``."""
