"""Step 3: the files a wheel or sdist must contain, and reading its core metadata file.

Paths are built from the name and version parts exactly as written in the filename (P87, P94).
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.core.dists.archives import Archive, MemberTooLarge
from bastion.core.dists.errors import DistProblem, shown
from bastion.core.dists.filenames import ParsedFilename
from bastion.core.dists.limits import Limits

__all__ = ["MetadataFile", "read_metadata_file"]

_WHEEL_REQUIRED_FILES = ("METADATA", "WHEEL", "RECORD")


@dataclass(frozen=True)
class MetadataFile:
    """The exact bytes of the core metadata member, and where they came from."""

    path: str
    content: bytes

    @property
    def label(self) -> str:
        """``"METADATA"`` or ``"PKG-INFO"``, for messages."""
        return self.path.rsplit("/", 1)[-1]


def read_metadata_file(
    archive: Archive, parsed: ParsedFilename, *, limits: Limits, problems: list[DistProblem]
) -> MetadataFile | None:
    """Check the required layout and read the metadata member; ``None`` if it cannot be read."""
    if parsed.packagetype == "bdist_wheel":
        path = _check_wheel_layout(archive, parsed, problems)
    else:
        path = _check_sdist_layout(archive, parsed, problems)
    if path is None:
        return None
    try:
        content = archive.read(path, max_bytes=limits.max_metadata_bytes)
    except MemberTooLarge:
        problems.append(
            DistProblem(
                "dist.metadata.too-large",
                f"{shown(path)} is larger than {limits.max_metadata_bytes} bytes.",
            )
        )
        return None
    except DistProblem as problem:
        problems.append(problem)
        return None
    return MetadataFile(path=path, content=content)


def _check_wheel_layout(
    archive: Archive, parsed: ParsedFilename, problems: list[DistProblem]
) -> str | None:
    """P87: ``{name}-{version}.dist-info/`` holds METADATA, WHEEL and RECORD."""
    dist_info = f"{parsed.name_part}-{parsed.version_part}.dist-info"
    metadata_path: str | None = None
    for required in _WHEEL_REQUIRED_FILES:
        path = f"{dist_info}/{required}"
        member = archive.get(path)
        if member is None or not member.is_file:
            problems.append(
                DistProblem(
                    "dist.wheel.missing-file",
                    f"Wheel {shown(parsed.filename)} does not contain the required file "
                    f"{shown(path)}.",
                )
            )
        elif required == "METADATA":
            metadata_path = path
    return metadata_path


def _check_sdist_layout(
    archive: Archive, parsed: ParsedFilename, problems: list[DistProblem]
) -> str | None:
    """P94: exactly one top-level directory ``{name}-{version}``, holding PKG-INFO."""
    expected_top = f"{parsed.name_part}-{parsed.version_part}"
    tops = list(dict.fromkeys(member.path.split("/", 1)[0] for member in archive.members))
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
    path = f"{expected_top}/PKG-INFO"
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
    return path
