"""Step 4b: what the upload form declares must agree with the file (the file wins).

Mirrors PyPI's form checks (legacy upload API, P63-P66 area): name and version must match,
``filetype`` must be known and true, and an sdist's ``pyversion`` is ``source``.
``metadata_version`` is not compared: the file's own Metadata-Version is authoritative. The
form's other core-metadata fields (``DeclaredFields.fields``) are compared by ``form_fields``.
"""

from __future__ import annotations

from bastion.core.dists.errors import DistProblem, shown
from bastion.core.dists.filenames import ParsedFilename
from bastion.core.dists.form_fields import check_form_fields
from bastion.core.dists.model import DeclaredFields, ReleaseMetadata
from bastion.core.names import is_valid_name, normalize_name
from bastion.core.versions import InvalidVersionText, Version, parse_version

__all__ = ["KNOWN_FILETYPES", "check_declared"]

KNOWN_FILETYPES = ("sdist", "bdist_wheel")
_FILETYPE_NAMES = {"sdist": "a source distribution", "bdist_wheel": "a wheel"}


def check_declared(
    declared: DeclaredFields,
    parsed: ParsedFilename,
    metadata: ReleaseMetadata | None,
    *,
    label: str,
    problems: list[DistProblem],
) -> None:
    """Compare the form's fields with the file's metadata (or its filename, without metadata)."""
    _check_name(declared.name, parsed, metadata, label, problems)
    _check_version(declared.version, parsed, metadata, label, problems)
    _check_filetype(declared.filetype, parsed, problems)
    _check_pyversion(declared.pyversion, parsed, problems)
    if declared.fields is not None and metadata is not None:
        check_form_fields(declared.fields, metadata, label=label, problems=problems)


def _check_name(
    name: str,
    parsed: ParsedFilename,
    metadata: ReleaseMetadata | None,
    label: str,
    problems: list[DistProblem],
) -> None:
    if not is_valid_name(name):
        problems.append(
            DistProblem(
                "dist.form.invalid-name",
                f"Name {shown(name)} in the upload form is not a valid project name.",
                field="name",
            )
        )
        return
    if metadata is not None and is_valid_name(metadata.name):
        expected, where = normalize_name(metadata.name), f"{shown(metadata.name)} in {label}"
    else:
        expected, where = parsed.name, f"{shown(parsed.name_part)} in the filename"
    if normalize_name(name) != expected:
        problems.append(
            DistProblem(
                "dist.form.name-mismatch",
                f"Name {shown(name)} in the upload form does not match {where}.",
                field="name",
            )
        )


def _check_version(
    text: str,
    parsed: ParsedFilename,
    metadata: ReleaseMetadata | None,
    label: str,
    problems: list[DistProblem],
) -> None:
    try:
        version = parse_version(text)
    except InvalidVersionText as error:
        problems.append(
            DistProblem(
                "dist.form.invalid-version", f"Version in the upload form: {error}", field="version"
            )
        )
        return
    expected: Version = parsed.version
    where = f"{shown(parsed.version_part)} in the filename"
    if metadata is not None:
        try:
            expected = parse_version(metadata.version)
        except InvalidVersionText:
            pass  # reported by the metadata step; fall back to the filename
        else:
            where = f"{shown(metadata.version)} in {label}"
    if version != expected:
        problems.append(
            DistProblem(
                "dist.form.version-mismatch",
                f"Version {shown(text)} in the upload form does not match {where}.",
                field="version",
            )
        )


def _check_filetype(
    filetype: str | None, parsed: ParsedFilename, problems: list[DistProblem]
) -> None:
    if filetype is None:
        return
    if filetype not in KNOWN_FILETYPES:
        problems.append(
            DistProblem("dist.form.filetype", "Use a known file type.", field="filetype")
        )
    elif filetype != parsed.packagetype:
        problems.append(
            DistProblem(
                "dist.form.filetype-mismatch",
                f"File type {shown(filetype)} in the upload form does not match the file, "
                f"which is {_FILETYPE_NAMES[parsed.packagetype]} ({shown(parsed.packagetype)}).",
                field="filetype",
            )
        )


def _check_pyversion(
    pyversion: str | None, parsed: ParsedFilename, problems: list[DistProblem]
) -> None:
    if parsed.packagetype == "sdist":
        if pyversion not in (None, "", "source"):
            problems.append(
                DistProblem(
                    "dist.form.pyversion",
                    "Use 'source' as Python version for an sdist.",
                    field="pyversion",
                )
            )
    elif pyversion == "source":
        problems.append(
            DistProblem(
                "dist.form.pyversion",
                "A wheel's Python version cannot be 'source'; use its python tag (e.g. 'py3').",
                field="pyversion",
            )
        )
