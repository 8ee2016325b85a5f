"""The validation pipeline: filename -> archive framing -> contents -> metadata -> form -> name.

Pure apart from reading the one file it is given; the upload endpoint and
``bastion check-dist FILE`` both call :func:`validate_distribution`, so the server's verdict
can be reproduced offline. Every step appends to one problem list; a step that makes the later
ones meaningless (unknown file type, unreadable or ambiguous archive) stops the pipeline there.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable

from bastion.core.dists.archives import ArchiveKind, open_archive
from bastion.core.dists.contents import check_contents, check_license_files
from bastion.core.dists.declared import check_declared
from bastion.core.dists.errors import DistProblem, DistributionRejected, shown
from bastion.core.dists.filenames import ParsedFilename, check_filename
from bastion.core.dists.limits import Limits
from bastion.core.dists.metadata import check_matches_filename, parse_release_metadata
from bastion.core.dists.model import (
    DeclaredFields,
    FileHasher,
    Hashes,
    MetadataFile,
    ReleaseMetadata,
    ValidatedDistribution,
)
from bastion.core.dists.policy import Policy, check_new_project_name, check_platform_tags
from bastion.core.dists.sdist import pkg_info_path
from bastion.core.versions import canonical_version, parse_version

__all__ = ["validate_distribution"]

_DEFAULT_LIMITS = Limits()
_DEFAULT_POLICY = Policy()


def validate_distribution(
    path: os.PathLike[str] | str,
    *,
    filename: str,
    declared: DeclaredFields | None = None,
    hashes: Hashes | None = None,
    limits: Limits = _DEFAULT_LIMITS,
    policy: Policy = _DEFAULT_POLICY,
    new_project: bool = True,
    similar_project: Callable[[str], str | None] | None = None,
) -> ValidatedDistribution:
    """Validate the distribution stored at ``path`` and uploaded as ``filename``.

    ``declared`` is what the upload form claims (``None``: nothing claimed). ``hashes`` may be
    passed when the caller already hashed the file while receiving it; otherwise they are
    computed here (on a second thread, alongside the validation). ``policy`` holds the index's
    rules (PyPI's by default).

    ``new_project``: whether the upload would create the project, so that the name rules for
    new projects apply (standard-library and prohibited names; and, given ``similar_project``
    -- a lookup from :func:`~bastion.core.names.confusable_key` to an existing project's name
    -- look-alikes). The default (``True``) answers "could this file start a project here?",
    which is what ``bastion check-dist`` asks; the upload endpoint passes ``False`` for a
    project that exists.

    Raises :class:`DistributionRejected` carrying every problem found.
    """
    problems: list[DistProblem] = []
    parsed = check_filename(
        filename,
        limits=limits,
        problems=problems,
        allow_local_versions=policy.allow_local_versions,
    )
    if parsed is None:
        raise _rejected(filename, problems, limits)
    check_platform_tags(parsed, policy=policy, problems=problems)

    background = None if hashes is not None else _BackgroundHashes(path)
    try:
        metadata_file, metadata = _check_archive(path, parsed, limits, policy, problems)
        if declared is not None:
            label = metadata_file.label if metadata_file is not None else "the file"
            check_declared(declared, parsed, metadata, label=label, problems=problems)
        if new_project:
            name = metadata.name if metadata is not None and metadata.name else parsed.name_part
            check_new_project_name(
                name, policy=policy, similar_project=similar_project, problems=problems
            )
        if problems:
            raise _rejected(filename, problems, limits)
        if background is not None:
            hashes = background.result()
    finally:
        if background is not None:
            background.cancel()

    # No problems means every step ran to the end.
    assert metadata_file is not None and metadata is not None and hashes is not None
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
        hashes=hashes,
        metadata=metadata,
        metadata_bytes=metadata_file.content,
        metadata_sha256=hashlib.sha256(metadata_file.content).hexdigest(),
    )


def _check_archive(
    path: os.PathLike[str] | str,
    parsed: ParsedFilename,
    limits: Limits,
    policy: Policy,
    problems: list[DistProblem],
) -> tuple[MetadataFile | None, ReleaseMetadata | None]:
    """Framing, contents and the metadata file, all while the archive is open once."""
    kind: ArchiveKind = "zip" if parsed.packagetype == "bdist_wheel" else "tar.gz"
    capture = frozenset({pkg_info_path(parsed)}) if kind == "tar.gz" else frozenset()
    try:
        with open_archive(path, kind=kind, limits=limits, capture=capture) as archive:
            problems.extend(archive.problems)
            if archive.ambiguous:
                return None, None
            metadata_file = check_contents(
                archive, parsed, limits=limits, policy=policy, problems=problems
            )
            if metadata_file is None:
                return None, None
            metadata = parse_release_metadata(
                metadata_file.content, label=metadata_file.label, problems=problems, policy=policy
            )
            if metadata is not None:
                check_matches_filename(
                    metadata, parsed, label=metadata_file.label, problems=problems
                )
                check_license_files(archive, parsed, metadata, problems=problems)
            return metadata_file, metadata
    except DistProblem as problem:
        problems.append(problem)
        return None, None


def _rejected(filename: str, problems: list[DistProblem], limits: Limits) -> DistributionRejected:
    return DistributionRejected(
        f"Distribution {shown(filename)} was rejected", _condensed(problems, limits)
    )


def _condensed(problems: list[DistProblem], limits: Limits) -> list[DistProblem]:
    """Each problem once, and at most ``max_problems_per_code`` of one code plus a summary."""
    seen: set[tuple[str, str]] = set()
    counts: dict[str, int] = {}
    kept: list[DistProblem] = []
    for problem in problems:
        key = (problem.code, problem.message)
        if key in seen:
            continue
        seen.add(key)
        counts[problem.code] = counts.get(problem.code, 0) + 1
        if counts[problem.code] <= limits.max_problems_per_code:
            kept.append(problem)
    for code, count in counts.items():
        if count > limits.max_problems_per_code:
            hidden = count - limits.max_problems_per_code
            kept.append(DistProblem(code, f"... and {hidden} more problems like the above."))
    return kept


class _BackgroundHashes:
    """Hash the whole file on a second thread while the pipeline reads it on this one.

    ``hashlib`` releases the GIL on large updates, so this overlaps with decompression instead
    of adding a second full pass to the validation time. Cancelled (and joined) if the file is
    rejected first.
    """

    _CHUNK_BYTES = 1024 * 1024

    def __init__(self, path: os.PathLike[str] | str) -> None:
        self._path = path
        self._stop = threading.Event()
        self._hashes: Hashes | None = None
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="bastion-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        hasher = FileHasher()
        try:
            with open(self._path, "rb") as stream:
                while not self._stop.is_set() and (chunk := stream.read(self._CHUNK_BYTES)):
                    hasher.update(chunk)
        except OSError as error:
            self._error = error
            return
        if not self._stop.is_set():
            self._hashes = hasher.hashes()

    def result(self) -> Hashes:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._hashes is not None
        return self._hashes

    def cancel(self) -> None:
        self._stop.set()
        self._thread.join()
