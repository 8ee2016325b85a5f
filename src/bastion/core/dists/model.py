"""Plain values that go into and come out of distribution validation."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from bastion.core.names import NormalizedName

__all__ = [
    "DeclaredFields",
    "FileHasher",
    "Hashes",
    "PackageType",
    "ReleaseMetadata",
    "ValidatedDistribution",
]

PackageType = Literal["sdist", "bdist_wheel"]

_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Hashes:
    """Digests of a whole distribution file, as lowercase hex."""

    sha256: str
    blake2b_256: str
    md5: str

    @classmethod
    def of_file(cls, path: os.PathLike[str] | str) -> Hashes:
        """Hash the file at ``path``, streaming it in 1 MiB chunks."""
        hasher = FileHasher()
        with open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK_BYTES):
                hasher.update(chunk)
        return hasher.hashes()


class FileHasher:
    """Feed a file's bytes in as they arrive (e.g. while spooling an upload), then get hashes."""

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self._blake2b_256 = hashlib.blake2b(digest_size=32)
        # md5 is only reported (the legacy upload API sends md5_digest); never trusted.
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def update(self, data: bytes) -> None:
        self._sha256.update(data)
        self._blake2b_256.update(data)
        self._md5.update(data)
        self.size += len(data)

    def hashes(self) -> Hashes:
        return Hashes(
            sha256=self._sha256.hexdigest(),
            blake2b_256=self._blake2b_256.hexdigest(),
            md5=self._md5.hexdigest(),
        )


@dataclass(frozen=True)
class DeclaredFields:
    """What the upload form claims about the file. ``None`` means "not declared"."""

    name: str
    version: str
    filetype: str | None = None
    pyversion: str | None = None
    metadata_version: str | None = None
    #: Every raw form field as sent (P64-P66: ``summary``, ``classifiers``, ``project_urls``
    #: ...), for comparing the form's other core-metadata fields with the file. ``None``: not
    #: compared. Fields that are not core metadata (digests, ``:action``) are ignored.
    fields: Mapping[str, Sequence[str]] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class ReleaseMetadata:
    """Core metadata as read from the distribution's own METADATA / PKG-INFO file.

    Values are as written in the file (not normalized); absent fields are ``""`` or ``()``.
    Multiple-use fields keep the file's order (P99).
    """

    metadata_version: str
    name: str
    version: str
    summary: str = ""
    description: str = ""
    description_content_type: str = ""
    keywords: str = ""
    home_page: str = ""
    download_url: str = ""
    author: str = ""
    author_email: str = ""
    maintainer: str = ""
    maintainer_email: str = ""
    license: str = ""
    license_expression: str = ""
    license_files: tuple[str, ...] = ()
    classifiers: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    supported_platforms: tuple[str, ...] = ()
    requires_dist: tuple[str, ...] = ()
    requires_python: str = ""
    requires_external: tuple[str, ...] = ()
    provides_extra: tuple[str, ...] = ()
    provides_dist: tuple[str, ...] = ()
    obsoletes_dist: tuple[str, ...] = ()
    dynamic: tuple[str, ...] = ()
    project_urls: tuple[tuple[str, str], ...] = ()
    import_names: tuple[str, ...] = ()
    import_namespaces: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict: tuples become lists, ``project_urls`` a list of pairs."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = [list(item) if isinstance(item, tuple) else item for item in value]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReleaseMetadata:
        """Inverse of :meth:`as_dict` (unknown keys are ignored)."""
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            if name not in data:
                continue
            value = data[name]
            if isinstance(value, list):
                value = tuple(tuple(item) if isinstance(item, list) else item for item in value)
            values[name] = value
        return cls(**values)


@dataclass(frozen=True)
class MetadataFile:
    """The exact bytes of a distribution's core metadata member, and where they came from."""

    path: str
    content: bytes = field(repr=False)

    @property
    def label(self) -> str:
        """``"METADATA"`` or ``"PKG-INFO"``, for messages."""
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ValidatedDistribution:
    """A distribution that passed validation, with everything the index stores about it."""

    filename: str
    name: NormalizedName
    #: ``str(Version)`` of the file's metadata version: normalized PEP 440.
    version: str
    #: Release identity (P107): ``1.0`` and ``1.0.0`` are both ``"1"``.
    canonical_version: str
    packagetype: PackageType
    #: ``"source"`` for an sdist; the wheel filename's python tag field (``"py2.py3"``).
    python_version: str
    #: Wheel tags as ``"py3-none-any"``; empty for an sdist.
    tags: frozenset[str]
    requires_python: str | None
    size: int
    hashes: Hashes
    metadata: ReleaseMetadata
    #: The exact bytes of ``{name}-{version}.dist-info/METADATA`` or the sdist's ``PKG-INFO``.
    metadata_bytes: bytes = field(repr=False)
    metadata_sha256: str
