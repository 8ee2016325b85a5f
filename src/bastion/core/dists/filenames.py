"""Step 1: the distribution's filename (P85, P86, P93, P106).

Only wheels (``.whl``) and gzipped-tar sdists (``.tar.gz``) are accepted. The name part must
be the normalized project name with ``-`` replaced by ``_`` and the version part the normalized
PEP 440 version, exactly: this index is stricter than PyPI, which compares versions as
``Version`` objects (P86 "documented choice"), and as strict as uv when publishing.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from bastion.core.dists.errors import DistProblem, DistributionRejected, shown
from bastion.core.dists.limits import Limits
from bastion.core.dists.model import PackageType
from bastion.core.names import NormalizedName, is_valid_name, normalize_name

__all__ = ["ParsedFilename", "check_filename", "parse_filename"]

WHEEL_SUFFIX = ".whl"
SDIST_SUFFIX = ".tar.gz"


@dataclass(frozen=True)
class ParsedFilename:
    """What a distribution's filename says about it."""

    filename: str
    packagetype: PackageType
    name: NormalizedName
    version: Version
    #: The name and version exactly as written in the filename; the archive's paths
    #: (``{name}-{version}.dist-info/``, ``{name}-{version}/``) are built from these.
    name_part: str
    version_part: str
    #: ``"source"`` for an sdist; the wheel's python tag field, e.g. ``"py2.py3"``.
    python_version: str
    #: Expanded wheel tags (``"py3-none-any"``); empty for an sdist.
    tags: frozenset[str]
    #: The wheel's build tag (``"1"``, ``"2b"``) or ``""``.
    build: str = ""


def parse_filename(
    filename: str, *, limits: Limits | None = None, allow_local_versions: bool = False
) -> ParsedFilename:
    """Parse and check ``filename``; raise :class:`DistributionRejected` with every problem."""
    problems: list[DistProblem] = []
    parsed = check_filename(
        filename,
        limits=limits or Limits(),
        problems=problems,
        allow_local_versions=allow_local_versions,
    )
    if problems or parsed is None:
        raise DistributionRejected(f"Filename {shown(filename)} was rejected", problems)
    return parsed


def check_filename(
    filename: str,
    *,
    limits: Limits,
    problems: list[DistProblem],
    allow_local_versions: bool = False,
) -> ParsedFilename | None:
    """Append the filename's problems to ``problems``.

    Returns ``None`` when the filename cannot be understood at all (later steps cannot run);
    otherwise the parsed filename, possibly with non-fatal problems appended. Local versions
    are a problem unless ``allow_local_versions`` (``Policy.allow_local_versions``, P106).
    """
    if len(filename) > limits.max_filename_length:
        problems.append(
            DistProblem(
                "dist.filename.too-long",
                f"The filename is {len(filename)} characters long; "
                f"at most {limits.max_filename_length} are allowed.",
            )
        )
        return None
    bad_characters = _unsafe_characters(filename)
    if bad_characters:
        problems.append(
            DistProblem(
                "dist.filename.invalid",
                f"Filename {shown(filename)} contains characters that are not allowed "
                f"({', '.join(map(ascii, bad_characters))}).",
            )
        )
        return None
    if filename.endswith(WHEEL_SUFFIX):
        parsed = _check_wheel_filename(filename, problems)
    elif filename.endswith(SDIST_SUFFIX):
        parsed = _check_sdist_filename(filename, problems)
    else:
        problems.append(
            DistProblem(
                "dist.filename.unsupported-type",
                f"Unsupported file type {shown(filename)}: upload a wheel (.whl) "
                "or a source distribution (.tar.gz).",
            )
        )
        return None
    # P106: the public index rejects local versions; Policy.allow_local_versions relaxes it.
    if parsed is not None and parsed.version.local is not None and not allow_local_versions:
        problems.append(
            DistProblem(
                "dist.version.local",
                f"The use of local versions in {shown(str(parsed.version))} is not allowed.",
                field="version",
            )
        )
    return parsed


def _unsafe_characters(filename: str) -> list[str]:
    """Path separators and control characters (C0, DEL, C1), each once, in order."""
    found: list[str] = []
    for character in filename:
        unsafe = character in "/\\" or unicodedata.category(character) == "Cc"
        if unsafe and character not in found:
            found.append(character)
    return found


def _check_wheel_filename(filename: str, problems: list[DistProblem]) -> ParsedFilename | None:
    try:
        name, version, _build, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as error:
        problems.append(DistProblem("dist.filename.invalid", str(error)))
        return None
    # parse_wheel_filename accepted it, so there are 4 or 5 dashes: name, version,
    # [build,] python, abi, platform.
    parts = filename[: -len(WHEEL_SUFFIX)].split("-")
    name_part, version_part = parts[0], parts[1]
    if not is_valid_name(name_part):
        problems.append(_invalid_name(filename, name_part))
        return None
    expected = _expected_name_part(name_part) + "-" + str(version) + "-" + "-".join(parts[2:])
    parsed = ParsedFilename(
        filename=filename,
        packagetype="bdist_wheel",
        name=normalize_name(name),
        version=version,
        name_part=name_part,
        version_part=version_part,
        python_version=parts[-3],
        tags=frozenset(str(tag) for tag in tags),
        build=parts[2] if len(parts) == 6 else "",
    )
    _check_normal_form(parsed, expected + WHEEL_SUFFIX, problems)
    return parsed


def _check_sdist_filename(filename: str, problems: list[DistProblem]) -> ParsedFilename | None:
    try:
        name, version = parse_sdist_filename(filename)
    except InvalidSdistFilename as error:
        problems.append(DistProblem("dist.filename.invalid", str(error)))
        return None
    name_part, _, version_part = filename[: -len(SDIST_SUFFIX)].rpartition("-")
    if not is_valid_name(name_part):
        problems.append(_invalid_name(filename, name_part))
        return None
    parsed = ParsedFilename(
        filename=filename,
        packagetype="sdist",
        name=normalize_name(name),
        version=version,
        name_part=name_part,
        version_part=version_part,
        python_version="source",
        tags=frozenset(),
    )
    expected = f"{_expected_name_part(name_part)}-{version}{SDIST_SUFFIX}"
    _check_normal_form(parsed, expected, problems)
    return parsed


def _expected_name_part(name_part: str) -> str:
    # PEP 427 / PEP 625: the normalized name with "-" replaced by "_".
    return normalize_name(name_part).replace("-", "_")


def _invalid_name(filename: str, name_part: str) -> DistProblem:
    return DistProblem(
        "dist.filename.invalid",
        f"Filename {shown(filename)} does not start with a valid project name "
        f"({shown(name_part)}).",
    )


def _check_normal_form(parsed: ParsedFilename, expected: str, problems: list[DistProblem]) -> None:
    if parsed.filename != expected:
        problems.append(
            DistProblem(
                "dist.filename.not-normalized",
                f"Filename {shown(parsed.filename)} is not normalized; "
                f"it should be {shown(expected)}.",
            )
        )
