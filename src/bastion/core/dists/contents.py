"""Step 3: the files a wheel (``wheel``) or sdist (``sdist``) must contain.

Dispatches on the package type; returns the core metadata member for step 4.
"""

from __future__ import annotations

from bastion.core.dists.archives import Archive
from bastion.core.dists.errors import DistProblem
from bastion.core.dists.filenames import ParsedFilename
from bastion.core.dists.limits import Limits
from bastion.core.dists.model import MetadataFile, ReleaseMetadata
from bastion.core.dists.policy import Policy
from bastion.core.dists.sdist import check_sdist, check_sdist_license_files
from bastion.core.dists.wheel import check_wheel, check_wheel_license_files
from bastion.core.dists.zipframing import ZipArchive

__all__ = ["MetadataFile", "check_contents", "check_license_files"]


def check_contents(
    archive: Archive,
    parsed: ParsedFilename,
    *,
    limits: Limits,
    policy: Policy,
    problems: list[DistProblem],
) -> MetadataFile | None:
    """Check the required layout and files; return the metadata member if it can be read."""
    if isinstance(archive, ZipArchive):
        return check_wheel(archive, parsed, limits=limits, policy=policy, problems=problems)
    return check_sdist(archive, parsed, limits=limits, problems=problems)


def check_license_files(
    archive: Archive,
    parsed: ParsedFilename,
    metadata: ReleaseMetadata,
    *,
    problems: list[DistProblem],
) -> None:
    """P90/P94: the License-File paths the metadata names are in the archive."""
    if isinstance(archive, ZipArchive):
        check_wheel_license_files(archive, parsed, metadata, problems=problems)
    else:
        check_sdist_license_files(archive, parsed, metadata, problems=problems)
