"""ZIP members for wheels: every member verified in one pass over the file (P109, P92).

``zipdirectory`` parses the end records and the central directory. :meth:`ZipArchive.scan` then
walks the members in file order, once: each local header is read at the offset the directory
gives and compared with it, the members must tile the file exactly (no gaps, no overlaps), and
each member is decompressed in bounded chunks -- never past its declared size -- while its CRC
and the hash its RECORD entry asks for are computed.
"""

from __future__ import annotations

import binascii
import hashlib
import queue
import stat
import struct
import threading
import zlib
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from typing import IO, Final, NamedTuple

from bastion.core.dists.archives import (
    CHUNK_BYTES,
    Archive,
    ArchiveMember,
    MemberTooLarge,
    unreadable,
)
from bastion.core.dists.errors import DistProblem, shown
from bastion.core.dists.limits import Limits
from bastion.core.dists.zipdirectory import (
    COMPARED_FLAGS,
    EXTRA_ZIP64,
    FLAG_DATA_DESCRIPTOR,
    LOCAL_HEADER,
    LOCAL_SIGNATURE,
    STORED,
    U32_MAX,
    ZipDirectory,
    ZipEntry,
    extra_fields,
    read_directory,
)

__all__ = ["HASHERS", "MemberDigest", "ZipArchive", "open_zip"]

_LOCAL_SIZE = LOCAL_HEADER.size
_DESCRIPTOR_SIGNATURE = b"PK\x07\x08"
#: Members up to this size (compressed and declared) are read and inflated in one call each.
_SMALL_MEMBER_BYTES = 256 * 1024
#: Members from this size on are checksummed and hashed on a second thread.
_THREADED_BYTES = 4 * CHUNK_BYTES
#: Largest output of one ``decompress`` call: with the digest queue (4 chunks) it bounds
#: memory for highly compressible members, however far the hashing thread lags behind.
_MAX_OUTPUT_BYTES = CHUNK_BYTES

#: RECORD hash algorithms a wheel may use (P92: sha256 or stronger).
HASHERS: Final[Mapping[str, Callable[[], hashlib._Hash]]] = {
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}


class MemberDigest(NamedTuple):
    """What :meth:`ZipArchive.scan` measured for one member."""

    #: ``<algorithm>=<urlsafe base64 digest, no padding>``, as RECORD writes it; ``""`` when
    #: no hash was asked for.
    hash: str
    size: int


def open_zip(
    raw: IO[bytes], head: bytes, file_size: int, limits: Limits, stack: ExitStack
) -> ZipArchive:
    """Parse the end records and central directory; raise :class:`DistProblem` if unusable."""
    return ZipArchive(raw, read_directory(raw, head, file_size, limits))


# -- members ------------------------------------------------------------------------------------


class ZipArchive(Archive):
    """A wheel's ZIP archive; :meth:`scan` verifies every member in one pass over the file."""

    def __init__(self, raw: IO[bytes], directory: ZipDirectory) -> None:
        self._raw = raw
        self._directory = directory
        self._entries: dict[str, ZipEntry] = {}
        for entry in directory.entries:
            self._entries.setdefault(entry.name, entry)
        members = (
            ArchiveMember(
                path=entry.name[:-1] if entry.is_dir else entry.name,
                size=entry.size,
                is_file=not entry.is_dir and not stat.S_ISLNK(entry.external_attr >> 16),
                is_dir=entry.is_dir,
            )
            for entry in directory.entries
        )
        super().__init__(members, directory.problems)

    def _read(self, path: str, max_bytes: int) -> bytes:
        entry = self._entries[path]
        if not entry.readable:
            raise DistProblem(
                "dist.archive.unreadable",
                f"Member {shown(path)} cannot be read (encrypted or unsupported compression).",
            )
        raw = self._raw
        raw.seek(self._directory.base + entry.offset)
        header = raw.read(_LOCAL_SIZE)
        if len(header) != _LOCAL_SIZE or header[:4] != LOCAL_SIGNATURE:
            raise DistProblem(
                "dist.zip.header-mismatch",
                f"Member {shown(path)} has no local header where the central directory says.",
            )
        name_length, extra_length = struct.unpack_from("<2H", header, 26)
        raw.seek(name_length + extra_length, 1)
        chunks: list[bytes] = []
        size = self._inflate(raw, entry, chunks.append)
        if size > max_bytes:  # pragma: no cover - declared size was checked, and is enforced
            raise MemberTooLarge(path)
        return b"".join(chunks)

    def scan(
        self, algorithms: Mapping[str, str], problems: list[DistProblem]
    ) -> dict[str, MemberDigest]:
        """Verify every member in one pass over the file, in file order.

        For each member: its local header agrees with the central directory, it starts where
        the previous one ended (no gaps, no overlaps), its data decompresses -- never past the
        declared size -- to exactly the declared size with the declared CRC. Members named in
        ``algorithms`` (path -> RECORD hash algorithm) are hashed on the way; the others are
        only checked. Returns what was measured for every member that could be read whole.
        """
        raw = self._raw
        base = self._directory.base
        entries = sorted(self._directory.entries, key=_offset_of)
        results: dict[str, MemberDigest] = {}
        position = entries[0].offset if entries else 0
        previous: ZipEntry | None = None
        here = -1  # where the file is positioned (relative to ``base``); -1: unknown
        for entry in entries:
            offset = entry.offset
            if offset != position:
                if offset < position and previous is not None:
                    problems.append(
                        DistProblem(
                            "dist.zip.overlapping-members",
                            f"Members {shown(previous.name)} and {shown(entry.name)} overlap "
                            "in the ZIP archive.",
                        )
                    )
                elif offset > position:
                    problems.append(_gap(offset - position, f"before {shown(entry.name)}"))
            if here != offset:
                raw.seek(base + offset)
            end = self._scan_member(raw, entry, algorithms.get(entry.name), results, problems)
            here = end
            if end > position:
                position, previous = end, entry
        directory_start = self._directory.directory_start
        if entries and position > directory_start:
            problems.append(
                DistProblem(
                    "dist.zip.overlapping-members",
                    "The last member overlaps the ZIP central directory.",
                )
            )
        elif entries and position < directory_start:
            problems.append(_gap(directory_start - position, "before the central directory"))
        return results

    def _scan_member(
        self,
        raw: IO[bytes],
        entry: ZipEntry,
        algorithm: str | None,
        results: dict[str, MemberDigest],
        problems: list[DistProblem],
    ) -> int:
        """Check one member (the file is positioned at its local header); return the offset
        just past it, where the file is left positioned (or -1 if it is not)."""
        # The local header and, usually, the name in one read (the name should be the
        # directory's; if it is not, the rest of it is read separately).
        expected_name = entry.raw_name
        head = raw.read(_LOCAL_SIZE + len(expected_name))
        if len(head) < _LOCAL_SIZE or head[:4] != LOCAL_SIGNATURE:
            problems.append(
                DistProblem(
                    "dist.zip.header-mismatch",
                    f"Member {shown(entry.name)} has no local header where the central "
                    "directory says.",
                )
            )
            return -1
        (_, _, flags, method, _, _, crc, compressed, size, name_length,
         extra_length) = LOCAL_HEADER.unpack_from(head)  # fmt: skip
        local_name = head[_LOCAL_SIZE : _LOCAL_SIZE + name_length]
        surplus = head[_LOCAL_SIZE + name_length :]  # read past a shorter local name
        if len(local_name) < name_length:
            local_name += raw.read(name_length - len(local_name))
        extra = surplus[:extra_length]
        if len(extra) < extra_length:
            extra += raw.read(extra_length - len(extra))
        elif len(surplus) > extra_length:  # read into the data: step back to its start
            raw.seek(extra_length - len(surplus), 1)
        if (
            local_name != entry.raw_name
            or method != entry.method
            or (flags ^ entry.flags) & COMPARED_FLAGS
            or crc != entry.crc
            or compressed != entry.compressed_size
            or size != entry.size
        ):
            mismatched = self._compare_local(
                entry, local_name, flags, method, (crc, compressed, size), extra
            )
            if mismatched:
                problems.append(
                    DistProblem(
                        "dist.zip.header-mismatch",
                        f"Member {shown(entry.name)}'s local header disagrees with the central "
                        f"directory ({', '.join(mismatched)}).",
                    )
                )
        data_start: int = entry.offset + _LOCAL_SIZE + name_length + extra_length
        end = data_start + entry.compressed_size
        if not entry.readable:
            raw.seek(self._directory.base + end)
            return end
        hasher = HASHERS[algorithm]() if algorithm is not None else None
        try:
            if entry.size <= _SMALL_MEMBER_BYTES and entry.compressed_size <= _SMALL_MEMBER_BYTES:
                content = self._small_content(raw, entry)
                if hasher is not None:
                    hasher.update(content)
                actual = len(content)
            else:
                update = hasher.update if hasher is not None else _ignore
                actual = self._inflate(raw, entry, update)
        except DistProblem as problem:
            problems.append(problem)
            raw.seek(self._directory.base + end)
            return end
        if entry.flags & FLAG_DATA_DESCRIPTOR:
            end += self._descriptor_length(raw)
        digest = f"{algorithm}={_urlsafe_b64(hasher.digest())}" if hasher is not None else ""
        results[entry.name] = MemberDigest(digest, actual)
        return end

    def _small_content(self, raw: IO[bytes], entry: ZipEntry) -> bytes:
        """A small member's whole content in one read and one decompression call (the fast
        path for wheels of many small files); same checks as :meth:`_inflate`."""
        name = entry.name
        data = raw.read(entry.compressed_size)
        if len(data) != entry.compressed_size:
            raise _truncated(name)
        if entry.method == STORED:
            if entry.compressed_size != entry.size:
                raise _size_mismatch(name, "its stored size differs from its declared size")
            content = data
        else:
            inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            try:
                content = inflater.decompress(data, entry.size + 1)
            except zlib.error as error:
                raise unreadable(f"Member {shown(name)} cannot be decompressed", error) from None
            if len(content) > entry.size:
                raise _size_mismatch(
                    name, f"it decompresses to more than its declared {entry.size} bytes"
                )
            if not inflater.eof:
                raise _truncated(name)
            if inflater.unused_data:
                raise _slack(name)
            if len(content) != entry.size:
                raise _size_mismatch(
                    name, f"it decompresses to {len(content)}, not {entry.size} bytes"
                )
        if zlib.crc32(content) != entry.crc:
            raise unreadable(f"Member {shown(name)} is corrupt", "CRC-32 mismatch")
        return content

    def _compare_local(
        self,
        entry: ZipEntry,
        local_name: bytes,
        flags: int,
        method: int,
        values: tuple[int, int, int],
        extra: bytes,
    ) -> list[str]:
        mismatched: list[str] = []
        if local_name != entry.raw_name:
            mismatched.append(f"name {shown(local_name.decode('utf-8', 'backslashreplace'))}")
        if method != entry.method:
            mismatched.append("compression method")
        if (flags ^ entry.flags) & COMPARED_FLAGS:
            mismatched.append("flags")
        if entry.flags & FLAG_DATA_DESCRIPTOR:
            return mismatched  # sizes and CRC are in the descriptor (reported separately)
        crc, compressed, size = values
        if extra and U32_MAX in (compressed, size):
            zip64 = extra_fields(extra, entry.name, [])
            local64 = zip64.get(EXTRA_ZIP64, b"")
            if size == U32_MAX and len(local64) >= 8:
                size = int.from_bytes(local64[0:8], "little")
            if compressed == U32_MAX and len(local64) >= 16:
                compressed = int.from_bytes(local64[8:16], "little")
        if crc != entry.crc:
            mismatched.append("CRC")
        if compressed != entry.compressed_size or size != entry.size:
            mismatched.append("sizes")
        return mismatched

    def _inflate(self, raw: IO[bytes], entry: ZipEntry, update: Callable[[bytes], object]) -> int:
        """Feed the member's content to ``update``; return its size.

        Never produces more than ``entry.size + 1`` bytes: a member that decompresses past its
        declared size is a bomb and is stopped there (``dist.zip.size-mismatch``). A large
        member's CRC and hash are computed on a second thread while this one decompresses.
        """
        digest = _ThreadedDigest(update) if entry.size >= _THREADED_BYTES else _Digest(update)
        try:
            total = self._decompress(raw, entry, digest.feed)
        finally:
            crc = digest.close()
        if crc != entry.crc:
            raise unreadable(f"Member {shown(entry.name)} is corrupt", "CRC-32 mismatch")
        return total

    def _decompress(self, raw: IO[bytes], entry: ZipEntry, feed: Callable[[bytes], None]) -> int:
        remaining = entry.compressed_size
        limit = entry.size
        name = entry.name
        if entry.method == STORED:
            if entry.compressed_size != entry.size:
                raise _size_mismatch(name, "its stored size differs from its declared size")
            while remaining:
                chunk = raw.read(min(CHUNK_BYTES, remaining))
                if not chunk:
                    raise _truncated(name)
                remaining -= len(chunk)
                feed(chunk)
            return entry.size
        total = 0
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            while remaining and not inflater.eof:
                data = raw.read(min(CHUNK_BYTES, remaining))
                if not data:
                    raise _truncated(name)
                remaining -= len(data)
                while data:
                    out = inflater.decompress(data, min(_MAX_OUTPUT_BYTES, limit + 1 - total))
                    if out:
                        total += len(out)
                        if total > limit:
                            raise _size_mismatch(
                                name, f"it decompresses to more than its declared {limit} bytes"
                            )
                        feed(out)
                    data = inflater.unconsumed_tail
                    if inflater.eof:
                        break
        except zlib.error as error:
            raise unreadable(f"Member {shown(name)} cannot be decompressed", error) from None
        if not inflater.eof:
            raise _truncated(name)
        if remaining or inflater.unused_data:
            raise _slack(name)
        if total != limit:
            raise _size_mismatch(name, f"it decompresses to {total}, not {limit} bytes")
        return total

    def _descriptor_length(self, raw: IO[bytes]) -> int:
        head = raw.read(4)
        length = 16 if head == _DESCRIPTOR_SIGNATURE else 12
        raw.seek(length - len(head), 1)
        return length


def _ignore(_data: bytes) -> None:
    return None


class _Digest:
    """A member's CRC-32 and RECORD hash, fed its content chunk by chunk."""

    def __init__(self, update: Callable[[bytes], object]) -> None:
        self._update = update
        self._crc = 0

    def feed(self, chunk: bytes) -> None:
        self._crc = zlib.crc32(chunk, self._crc)
        self._update(chunk)

    def close(self) -> int:
        """The CRC-32 of everything fed."""
        return self._crc


class _ThreadedDigest(_Digest):
    """The same on a second thread, overlapping with decompression: zlib, ``crc32`` and
    hashlib release the GIL on large buffers. The queue is short, so memory stays bounded
    (a few output chunks) whatever the member's size."""

    def __init__(self, update: Callable[[bytes], object]) -> None:
        super().__init__(update)
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self._thread = threading.Thread(target=self._run, name="bastion-digest", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            super().feed(chunk)

    def feed(self, chunk: bytes) -> None:
        self._chunks.put(chunk)

    def close(self) -> int:
        self._chunks.put(None)
        self._thread.join()
        return self._crc


def _offset_of(entry: ZipEntry) -> int:
    return entry.offset


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _urlsafe_b64(digest: bytes) -> str:
    return binascii.b2a_base64(digest, newline=False).rstrip(b"=").translate(_URLSAFE).decode()


def _slack(name: str) -> DistProblem:
    return DistProblem(
        "dist.zip.hidden-data",
        f"Member {shown(name)}'s compressed data ends before its declared compressed size; "
        "the rest belongs to no member.",
    )


def _gap(size: int, where: str) -> DistProblem:
    return DistProblem(
        "dist.zip.hidden-data", f"{size} bytes {where} belong to no member of the ZIP archive."
    )


def _size_mismatch(name: str, detail: str) -> DistProblem:
    return DistProblem(
        "dist.zip.size-mismatch", f"Member {shown(name)} lies about its size: {detail}."
    )


def _truncated(name: str) -> DistProblem:
    return DistProblem(
        "dist.archive.unreadable", f"Member {shown(name)} is truncated (its data ends early)."
    )
