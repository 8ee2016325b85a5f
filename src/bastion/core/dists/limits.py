"""The size limits applied while validating a distribution: one named field per limit."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True)
class Limits:
    """Bounds on what validation will read. Every check that can cost memory or CPU has one."""

    #: Entries in the archive (files, directories, links).
    max_members: int = 100_000
    #: Sum of the members' uncompressed sizes; for a tar also the whole decompressed stream.
    max_uncompressed_bytes: int = 2 * GiB
    #: Uncompressed / compressed size; only enforced above ``compression_ratio_threshold_bytes``
    #: (PyPI's approach, P109: small archives may compress very well).
    max_compression_ratio: int = 100
    compression_ratio_threshold_bytes: int = 64 * MiB
    #: Size of the ``METADATA`` / ``PKG-INFO`` member.
    max_metadata_bytes: int = 10 * MiB
    #: Length of the uploaded file's name, in characters.
    max_filename_length: int = 255
    #: Size of each of the other small files read whole: ``WHEEL``, ``entry_points.txt``.
    max_small_file_bytes: int = 1 * MiB
    #: Size of a wheel's ``RECORD`` (about 100 bytes per member).
    max_record_bytes: int = 16 * MiB
    #: Size of a ZIP central directory, which is read into memory whole (about 100 bytes per
    #: member); checked from the end-of-central-directory record before it is read.
    max_directory_bytes: int = 32 * MiB
    #: How many problems of one code are listed before the rest are summarized in one line
    #: (a wheel with 20,000 unlisted members gets one readable rejection, not 20,000 lines).
    max_problems_per_code: int = 20
    #: Largest single tar header record (pax extended header, GNU long name). tarfile reads
    #: these into memory whole, so they are bounded separately. Values below 64 KiB (the
    #: chunk size member content is read in) act as 64 KiB.
    max_tar_header_bytes: int = 1 * MiB
