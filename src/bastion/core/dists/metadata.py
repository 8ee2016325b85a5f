"""Step 4a: the core metadata file (P97-P104, P89).

Parsed with ``packaging.metadata`` (``parse_email``) and validated with
``Metadata.from_raw(raw, validate=True)``, whose ``ExceptionGroup`` of ``InvalidMetadata`` is
turned into problems, one per field; ``metadata_rules`` adds PyPI's checks on top. The stored
release metadata is the file's, as written (``ReleaseMetadata``).

Two leniencies, both PyPI's in effect (it validates the upload form, which twine fills in):

* a field whose value is exactly ``UNKNOWN`` (old setuptools' filler) counts as absent;
* ``License-File`` in metadata older than 2.4 (setuptools wrote it into 2.1/2.2) is not judged:
  it had no meaning then, and twine leaves it out of the form.

Unknown header fields are ignored, as PyPI ignores unknown form fields.
"""

from __future__ import annotations

import re
import textwrap
from functools import lru_cache
from typing import Final, cast

from packaging.metadata import InvalidMetadata, Metadata, RawMetadata, parse_email
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from bastion.core.dists.errors import DistProblem, shown
from bastion.core.dists.filenames import ParsedFilename
from bastion.core.dists.metadata_rules import check_metadata_rules, display_field
from bastion.core.dists.model import ReleaseMetadata
from bastion.core.dists.policy import Policy
from bastion.core.names import is_valid_name, normalize_name
from bastion.core.versions import InvalidVersionText, parse_version

__all__ = [
    "SUPPORTED_METADATA_VERSIONS",
    "check_matches_filename",
    "parse_release_metadata",
]

_DEFAULT_POLICY = Policy()
_CANDIDATE_VERSIONS: Final = ("1.0", "1.1", "1.2", "2.0", "2.1", "2.2", "2.3", "2.4", "2.5",
                              "2.6", "2.7", "2.8", "2.9")  # fmt: skip


def _accepted_by_packaging(version: str) -> bool:
    raw: RawMetadata = {"metadata_version": version, "name": "probe", "version": "1"}
    try:
        Metadata.from_raw(raw, validate=True)
    except ExceptionGroup:
        return False
    return True


#: Core metadata versions accepted (P97): exactly those the installed ``packaging`` validates
#: (1.0-2.6 with packaging 26.x; never 2.0, which was not a real version). PyPI itself stops at
#: 2.5 for now; 2.6 files are accepted here because their rules are enforced by packaging.
SUPPORTED_METADATA_VERSIONS: Final[tuple[str, ...]] = tuple(
    version for version in _CANDIDATE_VERSIONS if _accepted_by_packaging(version)
)

# Fields checked before packaging sees them (their problems are reported once, by us).
_OWN_FIELDS: Final = frozenset({"metadata-version", "name", "version", "requires-python"})
# Fields whose *values* metadata_rules validates one by one (packaging stops at the first bad
# value); packaging's value errors for them are dropped, its "introduced in" errors kept.
_RULE_FIELDS: Final = frozenset({"requires-dist", "provides-extra"})
_FIELD_CODES: Final = {
    "requires-dist": "dist.metadata.requirement",
    "provides-extra": "dist.metadata.provides-extra",
    "license-expression": "dist.metadata.license-expression",
    "license-file": "dist.metadata.license-file",
    "dynamic": "dist.metadata.dynamic",
    "summary": "dist.metadata.summary",
    "description-content-type": "dist.metadata.content-type",
    "import-name": "dist.metadata.import-name",
    "import-namespace": "dist.metadata.import-name",
}
_HEADER_DESCRIPTION: Final = re.compile(r"^description[ \t]*:", re.IGNORECASE | re.MULTILINE)
_HEADERS_END: Final = re.compile(r"\r?\n\r?\n")
_INTRODUCED: Final = re.compile(r"introduced in metadata version (\S+), not (\S+)")
_MULTIPLE_USE: Final = frozenset(
    {"classifier", "dynamic", "import-name", "import-namespace", "license-file", "obsoletes",
     "obsoletes-dist", "platform", "project-url", "provides", "provides-dist", "provides-extra",
     "requires", "requires-dist", "requires-external", "supported-platform"}
)  # fmt: skip
# Raw (packaging) names of the fields packaging knows, for the "unparsed" report.
_KNOWN_EMAIL_FIELDS: Final = frozenset(
    {"author", "author-email", "classifier", "description", "description-content-type",
     "download-url", "dynamic", "home-page", "import-name", "import-namespace", "keywords",
     "license", "license-expression", "license-file", "maintainer", "maintainer-email",
     "metadata-version", "name", "obsoletes", "obsoletes-dist", "platform", "project-url",
     "provides", "provides-dist", "provides-extra", "requires", "requires-dist",
     "requires-external", "requires-python", "summary", "supported-platform", "version"}
)  # fmt: skip


def parse_release_metadata(
    content: bytes,
    *,
    label: str,
    problems: list[DistProblem],
    policy: Policy = _DEFAULT_POLICY,
) -> ReleaseMetadata | None:
    """Parse and validate a METADATA / PKG-INFO file; ``label`` names it in messages.

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
    if "description" in raw and _HEADER_DESCRIPTION.search(_HEADERS_END.split(text, 1)[0]):
        raw["description"] = unfold_description(raw["description"])

    metadata_version = _required(
        raw.get("metadata_version"), "Metadata-Version", label, unparsed, problems
    )
    name = _required(raw.get("name"), "Name", label, unparsed, problems)
    version = _required(raw.get("version"), "Version", label, unparsed, problems)

    supported = metadata_version in SUPPORTED_METADATA_VERSIONS
    if metadata_version and not supported:
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
    _report_unparsed(unparsed, label, problems)
    checked = _without_fillers(raw, metadata_version)
    if supported:
        _validate_with_packaging(checked, label, problems)
    check_metadata_rules(checked, label=label, policy=policy, problems=problems)
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


def unfold_description(value: str) -> str:
    """A Description *header*'s text, with its RFC 822 continuation indentation removed.

    Before the description moved to the message body (2.1), it was a folded header: the spec
    prefixes continuation lines with 7 spaces and ``|``; setuptools indented them by 8 spaces.
    Left folded, a reStructuredText description would not render (setuptools and pkginfo, and
    so twine and PyPI, unfold it the same way).
    """
    first, _, rest = value.partition("\n")
    if not rest:
        return value.strip()
    lines = rest.split("\n")
    if all(line.startswith("       |") for line in lines if line.strip()):
        body = "\n".join(line[8:] for line in lines)
    else:
        body = textwrap.dedent(rest)
    return first.strip() + "\n" + body


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


def _report_unparsed(
    unparsed: dict[str, list[str]], label: str, problems: list[DistProblem]
) -> None:
    """Known fields packaging could not parse: repeated single-use fields, duplicate Project-URL
    labels, non-UTF-8 values. (Required fields and Requires-Python were reported already.)"""
    for key in sorted(unparsed):
        if key not in _KNOWN_EMAIL_FIELDS or key in _OWN_FIELDS:
            continue
        field = display_field(key)
        if key == "project-url":
            detail = "uses a label twice, or is not valid UTF-8"
        elif len(unparsed[key]) > 1 and key not in _MULTIPLE_USE:
            detail = "appears more than once"
        else:
            detail = "is not valid UTF-8"
        problems.append(
            DistProblem("dist.metadata.invalid-field", f"{field} in {label} {detail}.", field=field)
        )


def _without_fillers(raw: RawMetadata, metadata_version: str) -> RawMetadata:
    """The fields that are judged: ``UNKNOWN`` values and pre-2.4 License-File left out."""
    checked: dict[str, object] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            if value.strip() == "UNKNOWN":
                continue
        elif isinstance(value, list):
            value = [item for item in value if item.strip() != "UNKNOWN"]
            if not value:
                continue
        checked[key] = value
    if "license_files" in checked and metadata_version in ("1.0", "1.1", "1.2", "2.1", "2.2",
                                                            "2.3"):  # fmt: skip
        del checked["license_files"]
    return checked  # type: ignore[return-value]


def _validate_with_packaging(raw: RawMetadata, label: str, problems: list[DistProblem]) -> None:
    errors: list[InvalidMetadata] = []
    content_type = raw.get("description_content_type")
    if content_type is not None:  # judged apart, from a cache (``_content_type_errors``)
        judge = _content_type_errors if len(content_type) <= 200 else _judge_content_type
        errors.extend(judge(raw.get("metadata_version"), content_type))
        raw = cast(RawMetadata, {k: v for k, v in raw.items() if k != "description_content_type"})
    try:
        Metadata.from_raw(raw, validate=True)
    except ExceptionGroup as group:
        errors += [error for error in group.exceptions if isinstance(error, InvalidMetadata)]
    for error in sorted(errors, key=lambda error: error.field):
        problem = _problem_for(error, label)
        if problem is not None:
            problems.append(problem)


# Both spellings packaging names the field with: its own, and the header's (too new for the
# file's Metadata-Version).
_CONTENT_TYPE_FIELDS: Final = frozenset({"description_content_type", "description-content-type"})


def _judge_content_type(
    metadata_version: str | None, content_type: str
) -> tuple[InvalidMetadata, ...]:
    """packaging's verdict on a Description-Content-Type, for a file of ``metadata_version``:
    the same check as in ``from_raw``, on a minimal file with only this field besides the
    required ones, and only this field's errors kept."""
    raw: RawMetadata = {"name": "a", "version": "0", "description_content_type": content_type}
    if metadata_version is not None:
        raw["metadata_version"] = metadata_version
    try:
        Metadata.from_raw(raw, validate=True)
    except ExceptionGroup as group:
        return tuple(  # kept in a cache: without the frames of this check
            error.with_traceback(None)
            for error in group.exceptions
            if isinstance(error, InvalidMetadata) and error.field in _CONTENT_TYPE_FIELDS
        )
    return ()


# packaging parses the value as a MIME header, which took about a tenth of validating a file's
# metadata; nearly every upload sends one of a few short values, so each is judged once.
_content_type_errors = lru_cache(maxsize=256)(_judge_content_type)


def _problem_for(error: InvalidMetadata, label: str) -> DistProblem | None:
    key = error.field.lower()
    field = display_field(key)
    if introduced := _INTRODUCED.search(str(error)):
        return DistProblem(
            "dist.metadata.field-too-new",
            f"{field} in {label} needs Metadata-Version {introduced[1]} or later, not "
            f"{introduced[2]}.",
            field=field,
        )
    if key in _OWN_FIELDS or key in _RULE_FIELDS:
        return None
    code = _FIELD_CODES.get(key, "dist.metadata.invalid-field")
    return DistProblem(code, f"Invalid {field} in {label}: {error}.", field=field)


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
