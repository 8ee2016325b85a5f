"""The validation pipeline: filename -> archive framing -> contents -> metadata -> form.

Pure apart from reading the one file it is given; the upload endpoint and
``bastion check-dist FILE`` both call :func:`validate_distribution`, so the server's verdict
can be reproduced offline. Every step appends to one problem list; a step that makes the later
ones meaningless (unknown file type, unreadable archive) stops the pipeline there.
"""

from __future__ import annotations

import hashlib
import os

from bastion.core.dists.archives import ArchiveKind, open_archive
from bastion.core.dists.contents import MetadataFile, read_metadata_file
from bastion.core.dists.declared import check_declared
from bastion.core.dists.errors import DistProblem, DistributionRejected, shown
from bastion.core.dists.filenames import ParsedFilename, check_filename
from bastion.core.dists.limits import Limits
from bastion.core.dists.metadata import check_matches_filename, parse_release_metadata
from bastion.core.dists.model import DeclaredFields, Hashes, ReleaseMetadata, ValidatedDistribution
from bastion.core.versions import canonical_version, parse_version

__all__ = ["validate_distribution"]

_DEFAULT_LIMITS = Limits()


def validate_distribution(
    path: os.PathLike[str] | str,
    *,
    filename: str,
    declared: DeclaredFields | None = None,
    hashes: Hashes | None = None,
    limits: Limits = _DEFAULT_LIMITS,
) -> ValidatedDistribution:
    """Validate the distribution stored at ``path`` and uploaded as ``filename``.

    ``declared`` is what the upload form claims (``None``: nothing claimed). ``hashes`` may be
    passed when the caller already hashed the file while receiving it; otherwise they are
    computed here. Raises :class:`DistributionRejected` carrying every problem found.
    """
    problems: list[DistProblem] = []
    parsed = check_filename(filename, limits=limits, problems=problems)
    if parsed is None:
        raise _rejected(filename, problems)

    metadata_file = _read_metadata_file(path, parsed, limits, problems)
    metadata: ReleaseMetadata | None = None
    if metadata_file is not None:
        metadata = parse_release_metadata(
            metadata_file.content, label=metadata_file.label, problems=problems
        )
        if metadata is not None:
            check_matches_filename(metadata, parsed, label=metadata_file.label, problems=problems)
    if declared is not None:
        label = metadata_file.label if metadata_file is not None else "the file"
        check_declared(declared, parsed, metadata, label=label, problems=problems)

    if problems:
        raise _rejected(filename, problems)
    # No problems means every step ran to the end.
    assert metadata_file is not None and metadata is not None
    version = parse_version(metadata.version)
    return ValidatedDistribution(
        filename=filename,
        name=parsed.name,
        version=str(version),
        canonical_version=canonical_version(version),
        packagetype=parsed.packagetype,
        python_version=parsed.python_version,
        tags=parsed.tags,
        requires_python=metadata.requires_python or None,
        size=os.stat(path).st_size,
        hashes=hashes if hashes is not None else Hashes.of_file(path),
        metadata=metadata,
        metadata_bytes=metadata_file.content,
        metadata_sha256=hashlib.sha256(metadata_file.content).hexdigest(),
    )


def _read_metadata_file(
    path: os.PathLike[str] | str,
    parsed: ParsedFilename,
    limits: Limits,
    problems: list[DistProblem],
) -> MetadataFile | None:
    kind: ArchiveKind = "zip" if parsed.packagetype == "bdist_wheel" else "tar.gz"
    try:
        with open_archive(path, kind=kind, limits=limits) as archive:
            problems.extend(archive.problems)
            return read_metadata_file(archive, parsed, limits=limits, problems=problems)
    except DistProblem as problem:
        problems.append(problem)
        return None


def _rejected(filename: str, problems: list[DistProblem]) -> DistributionRejected:
    return DistributionRejected(f"Distribution {shown(filename)} was rejected", problems)
