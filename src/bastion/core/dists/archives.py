"""Step 2: archive framing. Is the file really the archive its extension says, within limits?

The container type is decided by content, never by name (issue item 1): a ``.whl`` must be a
ZIP archive and nothing else, a ``.tar.gz`` a gzip-compressed tar and nothing else; a file that
parses as both (a polyglot) is neither. Nothing is ever extracted to disk: ``zipframing`` reads
the ZIP structures itself, ``tarframing`` walks the tar headers of the decompressed stream, and
members are read in bounded chunks.

This module holds what both containers share: the :class:`Archive` view the later steps use,
the member-name rules (P95, P109) and the size bounds (P109).
"""

from __future__ import annotations

import os
import re
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import IO, Final, Literal, NamedTuple

from bastion.core.dists.errors import DistProblem, shown
from bastion.core.dists.limits import Limits

__all__ = [
    "AMBIGUOUS_CODES",
    "Archive",
    "ArchiveKind",
    "ArchiveMember",
    "MemberTooLarge",
    "UNSAFE_NAME",
    "name_problem",
    "open_archive",
    "plain_name",
    "read_small_member",
]

ArchiveKind = Literal["zip", "tar.gz"]

CHUNK_BYTES: Final = 1024 * 1024
TAR_BLOCK: Final = 512
_ZIP_SIGNATURES: Final = (b"PK\x03\x04", b"PK\x05\x06")  # first local header; empty archive
_GZIP_MAGIC: Final = b"\x1f\x8b"
_OTHER_COMPRESSION_MAGIC: Final = (b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")  # bz2 xz zstd

#: Framing problems after which the archive's content is ambiguous -- two tools could see two
#: different sets of files -- so content and metadata checks would judge one arbitrary reading.
#: When any of these is found the pipeline reports the framing problems and stops there.
AMBIGUOUS_CODES: Final[frozenset[str]] = frozenset(
    {
        "dist.archive.duplicate-member",
        "dist.archive.unreadable",
        "dist.zip.non-utf8-name",
        "dist.zip.prepended-data",
        "dist.zip.trailing-data",
        "dist.zip.hidden-data",
    }
)


class ArchiveMember(NamedTuple):
    """One entry of an archive, as its directory declares it. (A tuple: an archive may have
    100,000 of them, and they are made in the hot path.)"""

    path: str
    #: Declared uncompressed size in bytes.
    size: int
    #: A regular file (not a directory, link or device).
    is_file: bool
    is_dir: bool = False


class MemberTooLarge(Exception):
    """A member is larger than the caller's bound; it was not read past the bound."""


class Archive(ABC):
    """An open archive: its members (in archive order) and bounded reads of their content."""

    def __init__(self, members: Iterable[ArchiveMember], problems: Iterable[DistProblem]) -> None:
        self.members: tuple[ArchiveMember, ...] = tuple(members)
        #: Framing problems found while opening that did not stop it (see ``AMBIGUOUS_CODES``).
        self.problems: list[DistProblem] = list(problems)
        # The first member of a path wins (a duplicate is a problem of its own).
        self._by_path = {member.path: member for member in reversed(self.members)}

    @property
    def ambiguous(self) -> bool:
        """Whether a framing problem makes the content ambiguous (see ``AMBIGUOUS_CODES``)."""
        return any(problem.code in AMBIGUOUS_CODES for problem in self.problems)

    def get(self, path: str) -> ArchiveMember | None:
        """The first member with ``path``, or ``None``."""
        return self._by_path.get(path)

    def read(self, path: str, *, max_bytes: int) -> bytes:
        """The exact content of the regular file ``path``, read in bounded chunks.

        Raises :class:`MemberTooLarge` beyond ``max_bytes`` (declared or actual), ``KeyError`` if
        there is no such file, and :class:`DistProblem` if its content cannot be read.
        """
        member = self.get(path)
        if member is None or not member.is_file:
            raise KeyError(path)
        if member.size > max_bytes:
            raise MemberTooLarge(path)
        return self._read(path, max_bytes)

    @abstractmethod
    def _read(self, path: str, max_bytes: int) -> bytes: ...


@contextmanager
def open_archive(
    path: os.PathLike[str] | str,
    *,
    kind: ArchiveKind,
    limits: Limits,
    capture: frozenset[str] = frozenset(),
) -> Iterator[Archive]:
    """Decide the container type by content, open and frame-check the archive at ``path``.

    ``capture`` names members (a tar's ``PKG-INFO``) worth keeping while the archive is walked,
    so that reading them later does not mean decompressing the stream again.

    Raises :class:`DistProblem` when the file cannot be used as that kind of archive at all
    (wrong type, unreadable, over a limit); smaller problems are in ``Archive.problems``.
    """
    # Imported here: both modules build on the helpers below.
    from bastion.core.dists.tarframing import open_tar
    from bastion.core.dists.zipframing import open_zip

    file_size = os.stat(path).st_size
    if file_size == 0:
        raise DistProblem("dist.archive.unreadable", "The file is empty.")
    with ExitStack() as stack:
        raw = stack.enter_context(open(path, "rb", buffering=CHUNK_BYTES))
        head = raw.read(TAR_BLOCK)
        raw.seek(0)
        if kind == "zip":
            _check_not_tar(head, raw)
            archive: Archive = open_zip(raw, head, file_size, limits, stack)
        else:
            _check_not_zip(head, raw)
            archive = open_tar(raw, head, file_size, limits, stack, capture)
        yield archive


def read_small_member(
    archive: Archive, path: str, limit: int, problems: list[DistProblem]
) -> bytes | None:
    """A small member's bytes (metadata, WHEEL, RECORD ...), or ``None`` after reporting why
    it cannot be read."""
    try:
        return archive.read(path, max_bytes=limit)
    except MemberTooLarge:
        is_metadata = path.endswith(("/METADATA", "/PKG-INFO"))
        problems.append(
            DistProblem(
                "dist.metadata.too-large" if is_metadata else "dist.archive.too-large",
                f"{shown(path)} is larger than {limit} bytes.",
            )
        )
    except DistProblem as problem:
        problems.append(problem)
    return None


# -- container type by content (issue item 1, P109 polyglots) ----------------------------------

_WHEEL_IS_ZIP = "a wheel (.whl) must be a ZIP archive"
_SDIST_IS_TAR_GZ = "a source distribution (.tar.gz) must be a gzip-compressed tar archive"


def _check_not_tar(head: bytes, raw: IO[bytes]) -> None:
    """A wheel that starts as a (compressed) tar is a tarball or a tar+zip polyglot."""
    if not looks_like_tar(head):
        return
    raw.seek(0)
    if zipfile.is_zipfile(raw):
        message = f"The file is both a tar and a ZIP archive (a polyglot); {_WHEEL_IS_ZIP}."
    else:
        message = f"The file is a tar archive, but {_WHEEL_IS_ZIP}."
    raw.seek(0)
    raise DistProblem("dist.archive.wrong-type", message)


def _check_not_zip(head: bytes, raw: IO[bytes]) -> None:
    """An sdist with a ZIP end-of-central-directory anywhere ZIP readers look for one."""
    is_zip = zipfile.is_zipfile(raw)
    raw.seek(0)
    if head.startswith(_GZIP_MAGIC) and is_zip:
        raise DistProblem(
            "dist.archive.wrong-type",
            "The file is both a gzip-compressed tar and a ZIP archive (a polyglot); "
            f"{_SDIST_IS_TAR_GZ}.",
        )
    if head.startswith(_ZIP_SIGNATURES) or is_zip:
        raise DistProblem(
            "dist.archive.wrong-type", f"The file is a ZIP archive, but {_SDIST_IS_TAR_GZ}."
        )
    if not head.startswith(_GZIP_MAGIC):
        if looks_like_tar(head):
            detail = "The file is an uncompressed or differently compressed tar archive"
        else:
            detail = "The file is not gzip-compressed"
        raise DistProblem("dist.archive.wrong-type", f"{detail}, but {_SDIST_IS_TAR_GZ}.")


def looks_like_tar(head: bytes) -> bool:
    """Compressed data, or a first block whose tar header checksum is valid."""
    if head.startswith(_GZIP_MAGIC) or head.startswith(_OTHER_COMPRESSION_MAGIC):
        return True
    if len(head) < TAR_BLOCK:
        return False
    field = head[148:156].replace(b"\x00", b" ").strip()
    try:
        recorded = int(field, 8)
    except ValueError:
        return False
    unsigned = sum(head[:148]) + 8 * ord(" ") + sum(head[156:TAR_BLOCK])
    signed = sum(b - 256 if b > 127 else b for b in head[:148] + head[156:TAR_BLOCK]) + 256
    return recorded in (unsigned, signed)


def starts_like_zip(head: bytes) -> bool:
    return head.startswith(_ZIP_SIGNATURES)


# -- member names (P95, P109) -------------------------------------------------------------------

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
#: Anything wrong with a member name, in one search: a control character or backslash; an
#: absolute path or a drive ("C:"); an empty name; an empty, "." or ".." component. A single
#: trailing "/" (a ZIP directory entry) is allowed.
UNSAFE_NAME: Final = re.compile(
    r"[\x00-\x1f\x7f\\]|\A/|\A[A-Za-z]:|\A\Z|(?:\A|/)\.{0,2}/|(?:\A|/)\.{1,2}\Z"
)


def plain_name(name: str) -> bool:
    """A fast pre-check: ``True`` means :func:`name_problem` would find nothing. (Plain
    string tests; the regular expression only runs on the rare names that fail them.)"""
    return not (
        not name
        or name[0] == "/"
        or name[1:2] == ":"
        or "\\" in name
        or "//" in name
        or name[0] == "."
        or "/." in name
        or not name.isprintable()
    )


def name_problem(name: str) -> DistProblem | None:
    """The first problem with a member name, or ``None``.

    Rejected: control characters (0x00-0x1F, 0x7F) and undecodable bytes; absolute paths;
    backslashes (a separator on Windows); drive letters; empty, ``.`` and ``..`` components
    (which let two spellings name one file, or a name climb out of the target directory).
    One trailing ``/`` (a ZIP directory entry) is allowed.
    """
    if plain_name(name):
        return None
    decodable = name.isascii() or _is_utf8(name)
    if UNSAFE_NAME.search(name) is None and decodable:
        return None
    if _CONTROL.search(name) or not decodable:
        return DistProblem(
            "dist.archive.invalid-name",
            f"The archive member name {shown(name)} contains control characters or bytes "
            "that are not UTF-8.",
        )
    return DistProblem(
        "dist.archive.unsafe-path",
        f"The archive member {shown(name)} has an unsafe path (absolute, a backslash, or "
        "an empty, '.' or '..' component).",
    )


def has_control_characters(text: str) -> bool:
    """Whether ``text`` has a C0 control character or DEL (P109: 0x00-0x1F, 0x7F)."""
    return _CONTROL.search(text) is not None


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")  # tarfile keeps undecodable bytes as lone surrogates
    except UnicodeEncodeError:
        return False
    return True


def duplicate_problem(path: str, count: int) -> DistProblem:
    return DistProblem(
        "dist.archive.duplicate-member", f"The archive contains {shown(path)} {count} times."
    )


# -- bounds (P109) ------------------------------------------------------------------------------


def check_member_count(count: int, limits: Limits) -> None:
    if count > limits.max_members:
        raise DistProblem(
            "dist.archive.too-many-members",
            f"The archive has {count} members; at most {limits.max_members} are allowed.",
        )


def check_total_size(total: int, file_size: int, limits: Limits) -> None:
    if total > limits.max_uncompressed_bytes:
        raise too_large(total, limits)
    # P109: the ratio is only enforced above the threshold, as PyPI does.
    if (
        total > limits.compression_ratio_threshold_bytes
        and total > limits.max_compression_ratio * file_size
    ):
        raise too_compressed(total, file_size, limits)


def too_large(total: int, limits: Limits) -> DistProblem:
    return DistProblem(
        "dist.archive.too-large",
        f"The archive's uncompressed size is over {total} bytes; "
        f"at most {limits.max_uncompressed_bytes} are allowed.",
    )


def too_compressed(total: int, file_size: int, limits: Limits) -> DistProblem:
    return DistProblem(
        "dist.archive.too-compressed",
        f"The archive decompresses from {file_size} to over {total} bytes, a ratio above "
        f"{limits.max_compression_ratio}; it looks like a decompression bomb.",
    )


def unreadable(what: str, error: BaseException | str) -> DistProblem:
    detail = str(error) or type(error).__name__
    return DistProblem("dist.archive.unreadable", f"{what}: {detail.rstrip('.')}.")
