"""Step 3 for sdists: one top-level ``{name}-{version}/`` holding ``PKG-INFO`` (P94).

Paths are built from the name and version parts exactly as written in the filename.
"""

from __future__ import annotations

from bastion.core.dists.archives import Archive, name_problem, read_small_member
from bastion.core.dists.errors import DistProblem, shown
from bastion.core.dists.filenames import ParsedFilename
from bastion.core.dists.limits import Limits
from bastion.core.dists.model import MetadataFile, ReleaseMetadata
from bastion.core.dists.wheel import license_files_to_check

__all__ = ["check_sdist", "check_sdist_license_files", "pkg_info_path", "top_directory"]


def top_directory(parsed: ParsedFilename) -> str:
    return f"{parsed.name_part}-{parsed.version_part}"


def pkg_info_path(parsed: ParsedFilename) -> str:
    return f"{top_directory(parsed)}/PKG-INFO"


def check_sdist(
    archive: Archive, parsed: ParsedFilename, *, limits: Limits, problems: list[DistProblem]
) -> MetadataFile | None:
    """P94: exactly one top-level directory ``{name}-{version}``, holding PKG-INFO."""
    expected_top = top_directory(parsed)
    # Members with unsafe names were reported by the framing step; they say nothing about the
    # layout (``/etc/passwd`` would otherwise add a top-level directory named "").
    tops = list(
        dict.fromkeys(
            member.path.split("/", 1)[0]
            for member in archive.members
            if name_problem(member.path) is None
        )
    )
    layout_ok = tops == [expected_top]
    if not layout_ok:
        found = ", ".join(shown(top, limit=60) for top in tops[:5])
        if len(tops) > 5:
            found += f" and {len(tops) - 5} more"
        problems.append(
            DistProblem(
                "dist.sdist.bad-layout",
                f"Source distribution {shown(parsed.filename)} must contain a single top-level "
                f"directory {shown(expected_top)}; found {found or 'nothing'}.",
            )
        )
    path = pkg_info_path(parsed)
    member = archive.get(path)
    if member is None or not member.is_file:
        # With the wrong layout, the missing PKG-INFO is a consequence, not news.
        if layout_ok:
            problems.append(
                DistProblem(
                    "dist.sdist.missing-pkg-info",
                    f"Source distribution {shown(parsed.filename)} does not contain {shown(path)}.",
                )
            )
        return None
    content = read_small_member(archive, path, limits.max_metadata_bytes, problems)
    if content is None:
        return None
    return MetadataFile(path=path, content=content)


def check_sdist_license_files(
    archive: Archive,
    parsed: ParsedFilename,
    metadata: ReleaseMetadata,
    *,
    problems: list[DistProblem],
) -> None:
    """P94/PEP 639: each License-File (metadata 2.4+) is at ``{top}/<path>``."""
    top = top_directory(parsed)
    for license_file in license_files_to_check(metadata):
        member = archive.get(f"{top}/{license_file}")
        if member is None or member.is_dir:
            problems.append(
                DistProblem(
                    "dist.sdist.license-file-missing",
                    f"License-File {shown(license_file)} does not exist in the sdist at "
                    f"{shown(f'{top}/{license_file}')}.",
                    field="License-File",
                )
            )
