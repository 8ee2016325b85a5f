"""Step 4a: the core metadata file itself (P97, P100 in part, P89).

Kept basic on purpose: the fields the index relies on are checked (Metadata-Version, Name,
Version, Requires-Python, which is served to pip and uv); other fields are carried as written.
Unparseable optional fields are left out rather than rejected here.
"""

from __future__ import annotations

from typing import Final

from packaging.metadata import RawMetadata, parse_email
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from bastion.core.dists.errors import DistProblem, shown
from bastion.core.dists.filenames import ParsedFilename
from bastion.core.dists.model import ReleaseMetadata
from bastion.core.names import is_valid_name, normalize_name
from bastion.core.versions import InvalidVersionText, parse_version

__all__ = [
    "SUPPORTED_METADATA_VERSIONS",
    "check_matches_filename",
    "parse_release_metadata",
]

#: Core metadata versions accepted (P97). 2.6 is parsed by packaging >= 26.3, which bastion
#: requires; PyPI itself stops at 2.5 for now.
SUPPORTED_METADATA_VERSIONS: Final[tuple[str, ...]] = (
    "1.0",
    "1.1",
    "1.2",
    "2.1",
    "2.2",
    "2.3",
    "2.4",
    "2.5",
    "2.6",
)


def parse_release_metadata(
    content: bytes, *, label: str, problems: list[DistProblem]
) -> ReleaseMetadata | None:
    """Parse a METADATA / PKG-INFO file; ``label`` names it in messages.

    Returns ``None`` only when the file cannot be decoded; otherwise the metadata as written
    (``""`` for missing required fields, which are reported in ``problems``).
    """
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        problems.append(
            DistProblem(
                "dist.metadata.encoding",
                f"{label} is not valid UTF-8 (invalid byte at offset {error.start}).",
            )
        )
        return None
    raw, unparsed = parse_email(text)

    metadata_version = _required(
        raw.get("metadata_version"), "Metadata-Version", label, unparsed, problems
    )
    name = _required(raw.get("name"), "Name", label, unparsed, problems)
    version = _required(raw.get("version"), "Version", label, unparsed, problems)

    if metadata_version and metadata_version not in SUPPORTED_METADATA_VERSIONS:
        problems.append(
            DistProblem(
                "dist.metadata.unsupported-version",
                f"Metadata-Version {shown(metadata_version)} in {label} is not supported; "
                f"use one of {', '.join(SUPPORTED_METADATA_VERSIONS)}.",
                field="Metadata-Version",
            )
        )
    if name and not is_valid_name(name):
        problems.append(
            DistProblem(
                "dist.metadata.invalid-name",
                f"Name {shown(name)} in {label} is not a valid project name: use ASCII letters, "
                "digits, '.', '_' and '-', starting and ending with a letter or digit.",
                field="Name",
            )
        )
    if version:
        try:
            parse_version(version)
        except InvalidVersionText as error:
            problems.append(
                DistProblem(
                    "dist.metadata.invalid-version",
                    f"Version in {label}: {error}",
                    field="Version",
                )
            )
    _check_requires_python(raw, unparsed, label, problems)
    return _release_metadata(raw, metadata_version, name, version)


def check_matches_filename(
    metadata: ReleaseMetadata, parsed: ParsedFilename, *, label: str, problems: list[DistProblem]
) -> None:
    """P89: the file's Name and Version are the filename's (normalized comparison)."""
    if is_valid_name(metadata.name) and normalize_name(metadata.name) != parsed.name:
        problems.append(
            DistProblem(
                "dist.metadata.name-mismatch",
                f"Name {shown(metadata.name)} in {label} does not match the filename's "
                f"{shown(parsed.name_part)}.",
                field="Name",
            )
        )
    try:
        version = parse_version(metadata.version)
    except InvalidVersionText:
        return  # already reported (or missing)
    if version != parsed.version:
        problems.append(
            DistProblem(
                "dist.metadata.version-mismatch",
                f"Version {shown(metadata.version)} in {label} does not match the filename's "
                f"{shown(parsed.version_part)}.",
                field="Version",
            )
        )


def _required(
    value: str | None,
    field: str,
    label: str,
    unparsed: dict[str, list[str]],
    problems: list[DistProblem],
) -> str:
    """A required single-use field's stripped value, or ``""`` after reporting why not."""
    if field.lower() in unparsed:
        # parse_email moves a single-use field that appears more than once to ``unparsed``.
        problems.append(
            DistProblem(
                "dist.metadata.invalid-field",
                f"{field} appears more than once in {label}.",
                field=field,
            )
        )
        return ""
    value = (value or "").strip()
    if not value:
        problems.append(
            DistProblem(
                "dist.metadata.missing-field",
                f"{label} is missing the required field {field}.",
                field=field,
            )
        )
    return value


def _check_requires_python(
    raw: RawMetadata, unparsed: dict[str, list[str]], label: str, problems: list[DistProblem]
) -> None:
    # The index serves Requires-Python to installers (data-requires-python), so it must parse.
    if "requires-python" in unparsed:
        problems.append(
            DistProblem(
                "dist.metadata.requires-python",
                f"Requires-Python appears more than once in {label}.",
                field="Requires-Python",
            )
        )
        return
    value = raw.get("requires_python", "").strip()
    if not value:
        return
    try:
        SpecifierSet(value)
    except InvalidSpecifier:
        problems.append(
            DistProblem(
                "dist.metadata.requires-python",
                f"Requires-Python {shown(value)} in {label} is not a valid version specifier "
                "set (for example '>=3.9').",
                field="Requires-Python",
            )
        )


def _release_metadata(
    raw: RawMetadata, metadata_version: str, name: str, version: str
) -> ReleaseMetadata:
    return ReleaseMetadata(
        metadata_version=metadata_version,
        name=name,
        version=version,
        summary=raw.get("summary", ""),
        description=raw.get("description", ""),
        description_content_type=raw.get("description_content_type", ""),
        # The spec serializes keywords as ", ".join(keywords); parse_email splits on commas.
        keywords=", ".join(raw.get("keywords", [])),
        home_page=raw.get("home_page", ""),
        download_url=raw.get("download_url", ""),
        author=raw.get("author", ""),
        author_email=raw.get("author_email", ""),
        maintainer=raw.get("maintainer", ""),
        maintainer_email=raw.get("maintainer_email", ""),
        license=raw.get("license", ""),
        license_expression=raw.get("license_expression", ""),
        license_files=tuple(raw.get("license_files", [])),
        classifiers=tuple(raw.get("classifiers", [])),
        platforms=tuple(raw.get("platforms", [])),
        supported_platforms=tuple(raw.get("supported_platforms", [])),
        requires_dist=tuple(raw.get("requires_dist", [])),
        requires_python=raw.get("requires_python", "").strip(),
        requires_external=tuple(raw.get("requires_external", [])),
        provides_extra=tuple(raw.get("provides_extra", [])),
        provides_dist=tuple(raw.get("provides_dist", [])),
        obsoletes_dist=tuple(raw.get("obsoletes_dist", [])),
        dynamic=tuple(raw.get("dynamic", [])),
        project_urls=tuple(raw.get("project_urls", {}).items()),
        import_names=tuple(raw.get("import_names", [])),
        import_namespaces=tuple(raw.get("import_namespaces", [])),
    )
