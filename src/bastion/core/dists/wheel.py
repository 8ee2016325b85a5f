"""Step 3 for wheels: ``{name}-{version}.dist-info/`` and what it must hold (P87-P92).

Paths are built from the name and version parts exactly as written in the filename (P87).
The few small files the checks parse (RECORD, METADATA, WHEEL, ``entry_points.txt``) are read
directly; RECORD first, so that the single pass over the archive (``ZipArchive.scan``) knows
which hash to compute for each member. Every member's content is read once, by that pass.
"""

from __future__ import annotations

import configparser
import email.parser
import email.policy
import re
from collections.abc import Sequence
from typing import Final

from packaging.tags import parse_tag

from bastion.core.dists.archives import read_small_member
from bastion.core.dists.errors import DistProblem, shown
from bastion.core.dists.filenames import ParsedFilename
from bastion.core.dists.limits import Limits
from bastion.core.dists.model import MetadataFile, ReleaseMetadata
from bastion.core.dists.policy import Policy
from bastion.core.dists.record import algorithms, parse_record, verify_record
from bastion.core.dists.zipframing import ZipArchive

__all__ = ["check_wheel", "check_wheel_license_files", "dist_info_dir"]

_REQUIRED_FILES: Final = ("METADATA", "WHEEL", "RECORD")
_WHEEL_VERSION: Final = re.compile(r"(\d+)\.(\d+)\Z", re.ASCII)
# P91 (PyPI ``_ENTRY_POINT_NAME_RE``): script names may not carry path separators.
_SCRIPT_NAME: Final = re.compile(r"[\w.-]+\Z")
_SCRIPT_SECTIONS: Final = ("console_scripts", "gui_scripts")


def dist_info_dir(parsed: ParsedFilename) -> str:
    return f"{parsed.name_part}-{parsed.version_part}.dist-info"


def check_wheel(
    archive: ZipArchive,
    parsed: ParsedFilename,
    *,
    limits: Limits,
    policy: Policy,
    problems: list[DistProblem],
) -> MetadataFile | None:
    """P87-P92. Returns the METADATA member, or ``None`` if it cannot be read."""
    dist_info = dist_info_dir(parsed)
    _check_dist_info_dirs(archive, parsed, problems)
    found: dict[str, bytes] = {}
    for required in _REQUIRED_FILES:
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
            continue
        limit = {
            "METADATA": limits.max_metadata_bytes,
            "RECORD": limits.max_record_bytes,
        }.get(required, limits.max_small_file_bytes)
        content = read_small_member(archive, path, limit, problems)
        if content is not None:
            found[required] = content

    record_path = f"{dist_info}/RECORD"
    record = None
    if "RECORD" in found:
        record = parse_record(found["RECORD"], record_path=record_path, problems=problems)
    digests = archive.scan(algorithms(record or {}), problems)
    if record is not None:
        verify_record(
            record,
            record_path=record_path,
            members=archive.members,
            digests=digests,
            problems=problems,
        )
    if "WHEEL" in found:
        check_wheel_file(
            found["WHEEL"],
            parsed,
            path=f"{dist_info}/WHEEL",
            check_tags=policy.check_wheel_tags,
            problems=problems,
        )
    entry_points = f"{dist_info}/entry_points.txt"
    if (member := archive.get(entry_points)) is not None and member.is_file:
        content = read_small_member(archive, entry_points, limits.max_small_file_bytes, problems)
        if content is not None:
            check_entry_points(content, path=entry_points, problems=problems)
    if "METADATA" not in found:
        return None
    return MetadataFile(path=f"{dist_info}/METADATA", content=found["METADATA"])


def _check_dist_info_dirs(
    archive: ZipArchive, parsed: ParsedFilename, problems: list[DistProblem]
) -> None:
    """Installers refuse a wheel with several top-level ``.dist-info`` directories."""
    tops = {member.path.partition("/")[0] for member in archive.members}
    found = sorted(top for top in tops if top.endswith(".dist-info"))
    if len(found) > 1:
        listed = ", ".join(shown(name, limit=60) for name in found[:5])
        problems.append(
            DistProblem(
                "dist.wheel.multiple-dist-info",
                f"Wheel {shown(parsed.filename)} has {len(found)} .dist-info directories "
                f"({listed}); it must have exactly one.",
            )
        )


def check_wheel_file(
    content: bytes,
    parsed: ParsedFilename,
    *,
    path: str,
    check_tags: bool = True,
    problems: list[DistProblem],
) -> None:
    """P88: ``Wheel-Version`` 1.x, ``Root-Is-Purelib``, and ``Tag`` lines = the filename's."""
    label = shown(path)
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        problems.append(DistProblem("dist.wheel.invalid-wheel-file", f"{label} is not UTF-8."))
        return
    message = email.parser.Parser(policy=email.policy.compat32).parsestr(text, headersonly=True)
    versions = [str(value).strip() for value in message.get_all("Wheel-Version") or []]
    if len(versions) != 1:
        problems.append(
            DistProblem(
                "dist.wheel.invalid-wheel-file",
                f"{label} must have exactly one Wheel-Version field.",
            )
        )
    elif (match := _WHEEL_VERSION.match(versions[0])) is None:
        problems.append(
            DistProblem(
                "dist.wheel.invalid-wheel-file",
                f"{label} has an invalid Wheel-Version {shown(versions[0])}.",
            )
        )
    elif match[1] != "1":
        problems.append(
            DistProblem(
                "dist.wheel.unsupported-version",
                f"Wheel-Version {shown(versions[0])} in {label} is not supported; "
                "only 1.x wheels are.",
            )
        )
    purelib = [str(value).strip().lower() for value in message.get_all("Root-Is-Purelib") or []]
    if len(purelib) != 1 or purelib[0] not in ("true", "false"):
        problems.append(
            DistProblem(
                "dist.wheel.invalid-wheel-file",
                f"{label} must have exactly one Root-Is-Purelib field, 'true' or 'false'.",
            )
        )
    _check_tags(message.get_all("Tag") or [], parsed, label, check_tags, problems)
    builds = [str(value).strip() for value in message.get_all("Build") or []]
    if builds and (len(builds) > 1 or builds[0] != parsed.build):
        problems.append(
            DistProblem(
                "dist.wheel.tag-mismatch",
                f"Build {shown(', '.join(builds))} in {label} does not match the filename's "
                f"build tag {shown(parsed.build)}.",
            )
        )


def _check_tags(
    values: Sequence[object],
    parsed: ParsedFilename,
    label: str,
    compare: bool,
    problems: list[DistProblem],
) -> None:
    tags: set[str] = set()
    for value in values:
        try:
            tags.update(str(tag) for tag in parse_tag(str(value).strip()))
        except ValueError:
            problems.append(
                DistProblem(
                    "dist.wheel.invalid-wheel-file",
                    f"{label} has an invalid Tag {shown(str(value))}.",
                )
            )
            return
    if not tags:
        problems.append(DistProblem("dist.wheel.invalid-wheel-file", f"{label} has no Tag field."))
        return
    if compare and tags != parsed.tags:
        extra = sorted(tags - parsed.tags)
        missing = sorted(parsed.tags - tags)
        details = []
        if extra:
            details.append(f"not in the filename: {', '.join(extra[:5])}")
        if missing:
            details.append(f"missing: {', '.join(missing[:5])}")
        problems.append(
            DistProblem(
                "dist.wheel.tag-mismatch",
                f"The tags in {label} differ from the filename's ({'; '.join(details)}).",
            )
        )


class _EntryPointsParser(configparser.ConfigParser):
    """The entry points file format: INI, ``=`` only, case kept, no interpolation."""

    def __init__(self) -> None:
        super().__init__(delimiters=("=",), interpolation=None, strict=True)

    def optionxform(self, optionstr: str) -> str:
        return optionstr


def check_entry_points(content: bytes, *, path: str, problems: list[DistProblem]) -> None:
    """P91: ``entry_points.txt`` is UTF-8 INI and script names are ``[\\w.-]+``."""
    label = shown(path)
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        problems.append(DistProblem("dist.wheel.entry-points", f"{label} is not UTF-8."))
        return
    parser = _EntryPointsParser()
    try:
        parser.read_string(text, source=path)
    except configparser.Error as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        problems.append(
            DistProblem("dist.wheel.entry-points", f"{label} is not a valid INI file: {first_line}")
        )
        return
    for section in _SCRIPT_SECTIONS:
        if not parser.has_section(section):
            continue
        for name in parser[section]:
            if not _SCRIPT_NAME.match(name):
                problems.append(
                    DistProblem(
                        "dist.wheel.entry-points",
                        f"{label} defines the {section} entry point {shown(name)}; names may "
                        "only contain letters, digits, '_', '.' and '-'.",
                    )
                )


def check_wheel_license_files(
    archive: ZipArchive,
    parsed: ParsedFilename,
    metadata: ReleaseMetadata,
    *,
    problems: list[DistProblem],
) -> None:
    """P90: each License-File (metadata 2.4+) is at ``.dist-info/licenses/<path>``."""
    directory = f"{dist_info_dir(parsed)}/licenses"
    for license_file in license_files_to_check(metadata):
        member = archive.get(f"{directory}/{license_file}")
        if member is None or member.is_dir:
            problems.append(
                DistProblem(
                    "dist.wheel.license-file-missing",
                    f"License-File {shown(license_file)} does not exist in the wheel at "
                    f"{shown(f'{directory}/{license_file}')}.",
                    field="License-File",
                )
            )


def license_files_to_check(metadata: ReleaseMetadata) -> list[str]:
    """License-File values whose existence must be checked: metadata 2.4+, well-formed paths.

    Older metadata may carry License-File too (setuptools wrote it into 2.1 and 2.2); it had no
    meaning before 2.4, twine drops it from the upload form, and so it is ignored here.
    """
    if not metadata.license_files or _version_tuple(metadata.metadata_version) < (2, 4):
        return []
    return [
        path
        for path in metadata.license_files
        if path and ".." not in path and "*" not in path and not path.startswith("/")
    ]


def _version_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return (0,)
