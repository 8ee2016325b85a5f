"""A wheel's RECORD (P92): parsed strictly, then checked against what the archive really holds.

PyPI only compares RECORD's file list with the archive and e-mails the maintainers on a
mismatch; installers refuse a wheel whose members do not match their hashes. This index
verifies every hash and size (the digests come from ``ZipArchive.scan``, which reads each
member once) and rejects the wheel on any difference, so what it serves is installable.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from typing import Final, NamedTuple

from bastion.core.dists.archives import ArchiveMember
from bastion.core.dists.errors import DistProblem, shown
from bastion.core.dists.zipframing import HASHERS, MemberDigest

__all__ = ["RecordEntry", "parse_record", "verify_record"]

#: Length of the unpadded urlsafe-base64 digest for each accepted algorithm.
_ENCODED_LENGTH: Final = {"sha256": 43, "sha384": 64, "sha512": 86}
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]+\Z")
_SIZE: Final = re.compile(r"[0-9]+\Z")
_SIGNATURE_SUFFIXES: Final = (".jws", ".p7s")
#: A well-formed hash, for the fast path (the length is checked separately).
_HASH: Final = re.compile(r"(sha256|sha384|sha512)=[A-Za-z0-9_-]+\Z")


class RecordEntry(NamedTuple):
    """One RECORD row of a file other than RECORD itself."""

    path: str
    #: ``sha256``, ``sha384`` or ``sha512``; ``""`` when the row's hash cannot be checked
    #: (already reported).
    algorithm: str
    #: The hash exactly as written: ``sha256=<urlsafe base64, no padding>``.
    hash: str
    size: int


def parse_record(
    content: bytes, *, record_path: str, problems: list[DistProblem]
) -> dict[str, RecordEntry] | None:
    """Parse RECORD; ``None`` if it cannot be read at all. Bad rows are reported and skipped."""
    label = shown(record_path)
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        problems.append(
            DistProblem(
                "dist.record.invalid",
                f"{label} is not UTF-8 (invalid byte at offset {error.start}).",
            )
        )
        return None
    entries: dict[str, RecordEntry] = {}
    signatures = {record_path + suffix for suffix in _SIGNATURE_SUFFIXES}
    rows = csv.reader(io.StringIO(text, newline=""))
    try:
        _parse_rows(rows, record_path, label, signatures, entries, problems)
    except csv.Error as error:
        problems.append(DistProblem("dist.record.invalid", f"{label} is not valid CSV: {error}."))
        return None
    return entries


def _parse_rows(
    rows: Iterable[list[str]],
    record_path: str,
    label: str,
    signatures: set[str],
    entries: dict[str, RecordEntry],
    problems: list[DistProblem],
) -> None:
    match_hash = _HASH.match
    for line, row in enumerate(rows, start=1):
        if len(row) == 3:
            # Fast path: a well-formed row for a new file path.
            path, hash_text, size_text = row
            if (
                (matched := match_hash(hash_text))
                and size_text.isdecimal()
                and size_text.isascii()
                and len(hash_text) == len(matched[1]) + 1 + _ENCODED_LENGTH[matched[1]]
                and path not in entries
                and path != record_path
                and path not in signatures
                and not path.endswith("/")
            ):
                entries[path] = RecordEntry(path, matched[1], hash_text, int(size_text))
                continue
        if not row:
            continue
        if len(row) != 3:
            problems.append(
                DistProblem(
                    "dist.record.invalid",
                    f"Line {line} of {label} has {len(row)} fields; RECORD rows are "
                    "'path,hash,size'.",
                )
            )
            continue
        path, hash_text, size_text = row
        if path == record_path:
            continue  # RECORD lists itself without hash and size
        entry = _entry(path, hash_text, size_text, label, signatures, problems)
        if entry is None:
            continue
        if path in entries:
            problems.append(
                DistProblem(
                    "dist.record.duplicate-entry", f"{label} lists {shown(path)} more than once."
                )
            )
            continue
        entries[path] = entry


def _entry(
    path: str,
    hash_text: str,
    size_text: str,
    label: str,
    signatures: set[str],
    problems: list[DistProblem],
) -> RecordEntry | None:
    if path in signatures:
        problems.append(
            DistProblem(
                "dist.record.invalid",
                f"{label} lists the signature file {shown(path)}, which it must not.",
            )
        )
        return None
    if path.endswith("/"):
        problems.append(
            DistProblem(
                "dist.record.invalid", f"{label} lists the directory {shown(path)}; list files."
            )
        )
        return None
    algorithm, separator, encoded = hash_text.partition("=")
    # From here on the path counts as listed; a row whose hash cannot be checked is kept with
    # no algorithm, so that the file is not reported as unlisted as well.
    unverifiable = RecordEntry(path=path, algorithm="", hash=hash_text, size=-1)
    if not separator or not size_text:
        problems.append(
            DistProblem(
                "dist.record.invalid",
                f"{label} gives {shown(path)} no hash or no size; every file needs both.",
            )
        )
        return unverifiable
    if algorithm not in HASHERS:
        problems.append(
            DistProblem(
                "dist.record.weak-hash",
                f"{label} hashes {shown(path)} with {shown(algorithm)}; use sha256, sha384 or "
                "sha512.",
            )
        )
        return unverifiable
    if len(encoded) != _ENCODED_LENGTH[algorithm] or not _BASE64URL.match(encoded):
        problems.append(
            DistProblem(
                "dist.record.invalid",
                f"{label} has a malformed {algorithm} hash for {shown(path)} (it must be "
                "urlsafe base64 without padding).",
            )
        )
        return unverifiable
    if not _SIZE.match(size_text):
        problems.append(
            DistProblem(
                "dist.record.invalid",
                f"{label} has a malformed size {shown(size_text)} for {shown(path)}.",
            )
        )
        return unverifiable
    return RecordEntry(path=path, algorithm=algorithm, hash=hash_text, size=int(size_text))


def algorithms(entries: Mapping[str, RecordEntry]) -> dict[str, str]:
    """Path -> hash algorithm, for ``ZipArchive.scan``."""
    return {path: entry.algorithm for path, entry in entries.items() if entry.algorithm}


def verify_record(
    entries: Mapping[str, RecordEntry],
    *,
    record_path: str,
    members: Iterable[ArchiveMember],
    digests: Mapping[str, MemberDigest],
    problems: list[DistProblem],
) -> None:
    """Every member except RECORD (and its signatures) listed once, and every listing true.

    Members missing from ``digests`` could not be read; that was reported by the scan, so
    their hashes are not judged again here.
    """
    label = shown(record_path)
    exempt = {record_path} | {record_path + suffix for suffix in _SIGNATURE_SUFFIXES}
    present = [member.path for member in members if not member.is_dir]
    present_set = set(present)
    for path in present:
        if path not in entries and path not in exempt:
            problems.append(
                DistProblem(
                    "dist.record.missing-entry",
                    f"{label} does not list the archive member {shown(path)}.",
                )
            )
    for path, entry in entries.items():
        if path not in present_set:
            problems.append(
                DistProblem(
                    "dist.record.absent-file",
                    f"{label} lists {shown(path)}, which is not in the archive.",
                )
            )
            continue
        digest = digests.get(path)
        if (
            digest is None
            or not entry.algorithm
            or (digest.hash == entry.hash and digest.size == entry.size)
        ):
            continue
        if digest.hash != entry.hash:
            problems.append(
                DistProblem("dist.record.hash-mismatch", f"RECORD hash mismatch for {shown(path)}.")
            )
        else:
            problems.append(
                DistProblem(
                    "dist.record.size-mismatch",
                    f"RECORD size mismatch for {shown(path)}: listed {entry.size} bytes, "
                    f"the archive holds {digest.size}.",
                )
            )
