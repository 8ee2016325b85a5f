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
    #: Largest single tar header record (pax extended header, GNU long name). tarfile reads
    #: these into memory whole, so they are bounded separately. Values below 64 KiB (the
    #: chunk size member content is read in) act as 64 KiB.
    max_tar_header_bytes: int = 1 * MiB
