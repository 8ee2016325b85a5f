"""ZIP structures for wheels, read by hand: the end records and the central directory (P109;
PyPI ``warehouse/utils/zipfiles.py``).

``zipfile`` is lenient on purpose: it tolerates prepended data, trailing data, comments, and it
trusts whatever directory it finds first. Each of those is a *parser differential* -- the index
and an installer could see different files -- so the structures are parsed here, strictly. The
end-of-central-directory record (and the ZIP64 one) is located and checked first, so the member
count and the directory's size are bounded *before* the directory is read; then the directory is
parsed entry by entry (names, flags, methods, modes, extras). ``zipframing`` reads the members.
"""

from __future__ import annotations

import stat
import struct
from typing import IO

from bastion.core.dists.archives import (
    check_member_count,
    check_total_size,
    duplicate_problem,
    name_problem,
    plain_name,
    starts_like_zip,
    unreadable,
)
from bastion.core.dists.errors import DistProblem, shown
from bastion.core.dists.limits import Limits

__all__ = [
    "COMPARED_FLAGS",
    "DEFLATED",
    "EXTRA_ZIP64",
    "FLAG_DATA_DESCRIPTOR",
    "LOCAL_HEADER",
    "LOCAL_SIGNATURE",
    "STORED",
    "U32_MAX",
    "ZipDirectory",
    "ZipEntry",
    "extra_fields",
    "read_directory",
]

_EOCD = struct.Struct("<4s4H2LH")  # 22 bytes, APPNOTE 4.3.16
_EOCD_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")  # 20 bytes, APPNOTE 4.3.15
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")  # 56 bytes, APPNOTE 4.3.14
_ZIP64_EOCD_SIGNATURE = b"PK\x06\x06"
_CENTRAL = struct.Struct("<4s6H3L5H2L")  # 46 bytes, APPNOTE 4.3.12
_CENTRAL_SIGNATURE = b"PK\x01\x02"
LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # 30 bytes, APPNOTE 4.3.7
LOCAL_SIGNATURE = b"PK\x03\x04"
_MAX_COMMENT = 0xFFFF

STORED, DEFLATED = 0, 8
_FLAG_ENCRYPTED = 0x0001
FLAG_DATA_DESCRIPTOR = 0x0008
_FLAG_STRONG_ENCRYPTION = 0x0040
_FLAG_UTF8 = 0x0800
_FLAG_ENCRYPTED_DIRECTORY = 0x2000
_ENCRYPTION_FLAGS = _FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION | _FLAG_ENCRYPTED_DIRECTORY
#: Flags that send an entry down the full check (encryption, data descriptor).
_UNUSUAL_FLAGS = _ENCRYPTION_FLAGS | FLAG_DATA_DESCRIPTOR
_S_IFMT = 0o170000
#: File types (from the Unix mode in ``external_attr``) that need no further look.
_PLAIN_MODES = frozenset({0, stat.S_IFREG, stat.S_IFDIR})
#: Flag bits that change how a member is read; local header and directory must agree on them.
COMPARED_FLAGS = _FLAG_ENCRYPTED | FLAG_DATA_DESCRIPTOR | _FLAG_UTF8
EXTRA_ZIP64 = 0x0001
_EXTRA_UNICODE_PATH = 0x7075  # Info-ZIP: an alternative name some extractors prefer
U32_MAX = 0xFFFFFFFF
_U16_MAX = 0xFFFF


class ZipEntry:
    """One central-directory entry, with the values ZIP64 extras resolved."""

    __slots__ = (
        "compressed_size",
        "crc",
        "external_attr",
        "flags",
        "is_dir",
        "method",
        "name",
        "offset",
        "raw_name",
        "readable",
        "size",
    )

    def __init__(
        self,
        name: str,
        raw_name: bytes,
        flags: int,
        method: int,
        crc: int,
        compressed_size: int,
        size: int,
        offset: int,
        external_attr: int,
    ) -> None:
        self.name = name
        self.raw_name = raw_name
        self.flags = flags
        self.method = method
        self.crc = crc
        self.compressed_size = compressed_size
        self.size = size
        self.offset = offset
        self.external_attr = external_attr
        self.is_dir = name.endswith("/")
        #: Whether the content can be decompressed (not encrypted, a supported method).
        self.readable = not flags & _ENCRYPTION_FLAGS and method in (STORED, DEFLATED)


class ZipDirectory:
    """The parsed end records and central directory."""

    def __init__(self) -> None:
        self.entries: list[ZipEntry] = []
        self.problems: list[DistProblem] = []
        #: Offset of the first byte after the members: the central directory's start.
        self.directory_start = 0
        #: Bytes prepended to the archive whose offsets do not count them (``zip -A`` not run).
        self.base = 0


def read_directory(raw: IO[bytes], head: bytes, file_size: int, limits: Limits) -> ZipDirectory:
    """Parse the end records and central directory; raise :class:`DistProblem` if unusable."""
    directory = ZipDirectory()
    end = _find_end_record(raw, file_size)
    if end is None:
        if starts_like_zip(head):
            raise DistProblem(
                "dist.archive.unreadable",
                "The ZIP archive is truncated or corrupt (no end of central directory).",
            )
        raise DistProblem(
            "dist.archive.wrong-type",
            "The file is not a ZIP archive; a wheel (.whl) must be a ZIP archive.",
        )
    eocd_offset, eocd = end
    count, directory_size, directory_offset, records_start = _end_records(
        raw, eocd_offset, eocd, file_size, directory.problems
    )
    check_member_count(count, limits)
    if directory_size > limits.max_directory_bytes:
        raise DistProblem(
            "dist.archive.too-large",
            f"The ZIP central directory is {directory_size} bytes; at most "
            f"{limits.max_directory_bytes} are allowed.",
        )
    directory.base = _locate_directory(
        raw, directory_offset, directory_size, records_start, directory.problems
    )
    directory.directory_start = directory_offset
    raw.seek(directory.base + directory_offset)
    data = raw.read(directory_size)
    if len(data) != directory_size:
        raise DistProblem("dist.archive.unreadable", "The ZIP central directory is truncated.")
    _parse_directory(data, count, directory)
    check_total_size(sum(entry.size for entry in directory.entries), file_size, limits)
    _check_start(directory)
    return directory


# -- end of central directory -------------------------------------------------------------------


def _find_end_record(raw: IO[bytes], file_size: int) -> tuple[int, tuple[int, ...]] | None:
    """The last end-of-central-directory record whose comment fits in the file."""
    tail_size = min(file_size, _EOCD.size + _MAX_COMMENT)
    raw.seek(file_size - tail_size)
    tail = raw.read(tail_size)
    position = tail.rfind(_EOCD_SIGNATURE)
    while position >= 0:
        if position + _EOCD.size <= len(tail):
            record = _EOCD.unpack_from(tail, position)
            if position + _EOCD.size + record[7] <= len(tail):
                return file_size - tail_size + position, record
        position = tail.rfind(_EOCD_SIGNATURE, 0, position)
    return None


def _end_records(
    raw: IO[bytes],
    eocd_offset: int,
    eocd: tuple[int, ...],
    file_size: int,
    problems: list[DistProblem],
) -> tuple[int, int, int, int]:
    """(entry count, directory size, directory offset, start of the end records)."""
    _, disk, directory_disk, disk_entries, entries, size, offset, comment_length = eocd
    record_end = eocd_offset + _EOCD.size + comment_length
    if comment_length:
        problems.append(
            DistProblem("dist.zip.comment", "The ZIP archive has a comment; wheels may not.")
        )
    if record_end < file_size:
        problems.append(
            DistProblem(
                "dist.zip.trailing-data",
                f"{file_size - record_end} bytes follow the end of the ZIP archive.",
            )
        )
    records_start = eocd_offset
    if eocd_offset >= _ZIP64_LOCATOR.size:
        raw.seek(eocd_offset - _ZIP64_LOCATOR.size)
        locator = _ZIP64_LOCATOR.unpack(raw.read(_ZIP64_LOCATOR.size))
        if locator[0] == _ZIP64_LOCATOR_SIGNATURE:
            return _zip64_end_record(raw, eocd, eocd_offset, locator)
    if disk or directory_disk or disk_entries != entries:
        raise DistProblem(
            "dist.archive.unreadable", "The ZIP archive spans several disks; it must be one file."
        )
    return entries, size, offset, records_start


def _zip64_end_record(
    raw: IO[bytes], eocd: tuple[int, ...], eocd_offset: int, locator: tuple[int, ...]
) -> tuple[int, int, int, int]:
    _, locator_disk, record_offset, disks = locator
    expected_offset = eocd_offset - _ZIP64_LOCATOR.size - _ZIP64_EOCD.size
    if locator_disk != 0 or disks != 1 or record_offset != expected_offset:
        raise DistProblem(
            "dist.archive.unreadable",
            "The ZIP64 end-of-central-directory locator is inconsistent (or the record has "
            "extensible data, which is not accepted).",
        )
    raw.seek(record_offset)
    record = _ZIP64_EOCD.unpack(raw.read(_ZIP64_EOCD.size))
    signature, record_size, _, _, disk, directory_disk, disk_entries, entries, size, offset = record
    if signature != _ZIP64_EOCD_SIGNATURE or record_size != _ZIP64_EOCD.size - 12:
        raise DistProblem(
            "dist.archive.unreadable", "The ZIP64 end-of-central-directory record is corrupt."
        )
    if disk or directory_disk or disk_entries != entries:
        raise DistProblem(
            "dist.archive.unreadable", "The ZIP archive spans several disks; it must be one file."
        )
    # The 32-bit record must agree wherever it is not the "see ZIP64" marker.
    for narrow, wide, marker in ((eocd[4], entries, _U16_MAX), (eocd[5], size, U32_MAX),
                                 (eocd[6], offset, U32_MAX)):  # fmt: skip
        if narrow != marker and narrow != wide:
            raise DistProblem(
                "dist.archive.unreadable",
                "The ZIP and ZIP64 end-of-central-directory records disagree.",
            )
    return entries, size, offset, record_offset


def _locate_directory(
    raw: IO[bytes],
    offset: int,
    size: int,
    records_start: int,
    problems: list[DistProblem],
) -> int:
    """Where the central directory really is; returns the prepended byte count (the base).

    The directory ends where the end records start. If it is declared to end earlier, either
    data was prepended without adjusting offsets (the directory is found shifted by that much)
    or there is unexplained data before the end records.
    """
    base = records_start - (offset + size)
    if base < 0:
        raise DistProblem(
            "dist.archive.unreadable",
            "The ZIP central directory overlaps the end-of-central-directory record.",
        )
    if base == 0:
        return 0
    raw.seek(offset + base)
    if raw.read(4) == _CENTRAL_SIGNATURE or size == 0:
        problems.append(
            DistProblem(
                "dist.zip.prepended-data",
                f"{base} bytes precede the ZIP archive (for example a script or another "
                "archive); a wheel must start with its first member.",
            )
        )
        return base
    problems.append(
        DistProblem(
            "dist.zip.hidden-data",
            f"{base} bytes between the ZIP central directory and its end record belong to no "
            "member.",
        )
    )
    return 0


# -- central directory --------------------------------------------------------------------------


def _parse_directory(data: bytes, count: int, directory: ZipDirectory) -> None:
    """Parse ``count`` entries. The common entry (ASCII name, no extra or comment, a plain
    file or directory, stored or deflated) takes a fast path; anything else is checked fully.
    """
    problems = directory.problems
    entries = directory.entries
    append = entries.append
    seen: set[str] = set()
    duplicates: dict[str, int] = {}
    unpack = _CENTRAL.unpack_from
    header_size = _CENTRAL.size
    plain = plain_name
    data_size = len(data)
    position = 0
    for _ in range(count):
        if position + header_size > data_size or data[position : position + 4] != (
            _CENTRAL_SIGNATURE
        ):
            raise DistProblem(
                "dist.archive.unreadable",
                "The ZIP central directory is corrupt or has fewer entries than declared.",
            )
        (_, _, _, flags, method, _, _, crc, compressed, size, name_length, extra_length,
         comment_length, disk, _, external, offset) = unpack(data, position)  # fmt: skip
        start = position + header_size
        raw_name = data[start : start + name_length]
        position = start + name_length + extra_length + comment_length
        if position > data_size or disk not in (0, _U16_MAX):
            raise DistProblem("dist.archive.unreadable", "The ZIP central directory is corrupt.")
        if raw_name.isascii():
            name = raw_name.decode("ascii")
        else:
            name = _decode_name(raw_name, flags, problems)
        if extra_length or comment_length:
            compressed, size, offset = _directory_extra(
                data[start + name_length : start + name_length + extra_length],
                comment_length,
                name,
                (compressed, size, offset),
                problems,
            )
        entry = ZipEntry(name, raw_name, flags, method, crc, compressed, size, offset, external)
        if (
            flags & _UNUSUAL_FLAGS
            or method not in (STORED, DEFLATED)
            or (external >> 16) & _S_IFMT not in _PLAIN_MODES
            or not plain(name)
            or (entry.is_dir and size)
        ):
            _check_entry(entry, problems)
        if name in seen:
            duplicates[name] = duplicates.get(name, 1) + 1
        else:
            seen.add(name)
        append(entry)
    if position != data_size:
        raise DistProblem(
            "dist.archive.unreadable",
            "The ZIP central directory holds more data than its declared entries.",
        )
    problems += [duplicate_problem(name, times) for name, times in duplicates.items()]


def _decode_name(raw_name: bytes, flags: int, problems: list[DistProblem]) -> str:
    """P109: names are UTF-8 (flag bit 11) or plain ASCII; anything else is rejected."""
    if raw_name.isascii():
        return raw_name.decode("ascii")
    if flags & _FLAG_UTF8:
        try:
            return raw_name.decode("utf-8")
        except UnicodeDecodeError:
            pass
    shown_name = raw_name.decode("cp437")  # what zipfile would show for it
    problems.append(
        DistProblem(
            "dist.zip.non-utf8-name",
            f"Member name {shown(shown_name)} is not UTF-8 (or not flagged as UTF-8), so "
            "tools could read it differently.",
        )
    )
    return shown_name


def _directory_extra(
    extra: bytes,
    comment_length: int,
    name: str,
    values: tuple[int, int, int],
    problems: list[DistProblem],
) -> tuple[int, int, int]:
    """Resolve ZIP64 sizes/offset from the extra field; check the Unicode path extra; no
    member comments."""
    if comment_length:
        problems.append(DistProblem("dist.zip.comment", f"Member {shown(name)} has a ZIP comment."))
    fields = extra_fields(extra, name, problems)
    zip64 = fields.get(EXTRA_ZIP64)
    compressed, size, offset = values
    if zip64 is not None:
        wanted = [size == U32_MAX, compressed == U32_MAX, offset == U32_MAX]
        if len(zip64) < 8 * sum(wanted):
            problems.append(unreadable(f"Member {shown(name)}", "malformed ZIP64 extra field"))
            return compressed, size, offset
        numbers = [
            int.from_bytes(zip64[index : index + 8], "little")
            for index in range(0, 8 * sum(wanted), 8)
        ]
        resolved = iter(numbers)
        size = next(resolved) if wanted[0] else size
        compressed = next(resolved) if wanted[1] else compressed
        offset = next(resolved) if wanted[2] else offset
    unicode_path = fields.get(_EXTRA_UNICODE_PATH)
    if unicode_path is not None and unicode_path[5:] != name.encode("utf-8", "replace"):
        problems.append(
            DistProblem(
                "dist.zip.header-mismatch",
                f"Member {shown(name)} carries a different Unicode path name in an extra field.",
            )
        )
    return compressed, size, offset


def extra_fields(extra: bytes, name: str, problems: list[DistProblem]) -> dict[int, bytes]:
    fields: dict[int, bytes] = {}
    position = 0
    while position + 4 <= len(extra):
        header_id, length = struct.unpack_from("<2H", extra, position)
        value = extra[position + 4 : position + 4 + length]
        position += 4 + length
        if header_id in fields and header_id in (EXTRA_ZIP64, _EXTRA_UNICODE_PATH):
            problems.append(unreadable(f"Member {shown(name)}", "duplicate ZIP extra field"))
        fields.setdefault(header_id, value)
    if position != len(extra) and any(extra[position:]):
        problems.append(unreadable(f"Member {shown(name)}", "malformed ZIP extra field"))
    return fields


def _check_entry(entry: ZipEntry, problems: list[DistProblem]) -> None:
    name = entry.name
    if (problem := name_problem(name)) is not None:
        problems.append(problem)
    flags = entry.flags
    if flags & _ENCRYPTION_FLAGS:
        problems.append(DistProblem("dist.zip.encrypted", f"Member {shown(name)} is encrypted."))
    elif entry.method not in (STORED, DEFLATED):
        problems.append(
            DistProblem(
                "dist.zip.unsupported-compression",
                f"Member {shown(name)} uses compression method {entry.method}; only stored (0) "
                "and deflated (8) members are accepted.",
            )
        )
    if flags & FLAG_DATA_DESCRIPTOR:
        problems.append(
            DistProblem(
                "dist.zip.data-descriptor",
                f"Member {shown(name)} was streamed (its sizes follow its data in a data "
                "descriptor); write the wheel to a seekable file.",
            )
        )
    mode = entry.external_attr >> 16
    if stat.S_ISLNK(mode):
        problems.append(
            DistProblem("dist.zip.symlink", f"Member {shown(name)} is a symbolic link.")
        )
    elif stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        problems.append(
            DistProblem(
                "dist.archive.special-member",
                f"Member {shown(name)} is a device, FIFO or socket, not a file.",
            )
        )
    # (A deflated empty entry has a compressed size of 2; only real content counts.)
    if entry.is_dir and entry.size:
        problems.append(
            DistProblem(
                "dist.zip.hidden-data", f"Directory entry {shown(name)} has content of its own."
            )
        )


def _check_start(directory: ZipDirectory) -> None:
    """The first member starts the file (after any prepended bytes already reported)."""
    if not directory.entries or directory.base:
        return
    first = min(entry.offset for entry in directory.entries)
    if first > 0:
        directory.problems.append(
            DistProblem(
                "dist.zip.prepended-data",
                f"{first} bytes precede the first member of the ZIP archive; a wheel must start "
                "with its first member.",
            )
        )
