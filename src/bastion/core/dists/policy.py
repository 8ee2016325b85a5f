"""Index policy: the configurable rules that are not about a file being well-formed (issue 6).

:class:`Policy` holds PyPI's defaults. The pure checks here take a parsed filename or a name and
append problems; the upload endpoint decides which project exists and passes what it knows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from bastion.core.dists.errors import DistProblem, shown
from bastion.core.dists.filenames import ParsedFilename
from bastion.core.names import (
    PROHIBITED_NAMES,
    confusable_key,
    is_prohibited_name,
    is_stdlib_name,
    normalize_name,
)

__all__ = [
    "Policy",
    "check_platform_tags",
    "check_new_project_name",
    "is_pypi_platform_tag",
]


@dataclass(frozen=True)
class Policy:
    """What this index accepts beyond well-formedness. The defaults are PyPI's."""

    #: P106: ``1.0+local`` versions. PyPI: never. An internal index may want them.
    allow_local_versions: bool = False
    #: P108: platform tags accepted on top of PyPI's allow-list (``"linux_x86_64"`` for wheels
    #: built on and for the organisation's own machines).
    extra_platform_tags: frozenset[str] = frozenset()
    #: P88: the ``Tag`` lines of ``WHEEL`` must be the expansion of the filename's tags. Off
    #: accepts renamed wheels (built as ``linux_x86_64``, renamed ``manylinux2014`` without
    #: auditwheel, as some large projects publish); installers only read the filename.
    check_wheel_tags: bool = True
    #: P104: classifiers must be known to ``trove-classifiers`` and not deprecated.
    check_classifiers: bool = True
    #: ``Private :: ...`` classifiers exist so that a private project cannot reach PyPI by
    #: accident (PyPI rejects them as unknown). A self-hosted index is where such projects
    #: belong, so they are accepted here unless this is switched off.
    allow_private_classifiers: bool = True
    #: P104: the long description must render with ``readme-renderer``.
    render_description: bool = True
    #: New projects may not take standard-library module names (PyPI: ``stdlib-list``).
    reject_stdlib_names: bool = True
    #: Normalized names no new project may take.
    prohibited_names: frozenset[str] = PROHIBITED_NAMES


# -- P108: PyPI's platform-tag allow-list (warehouse ``_valid_platform_tag``) -----------------

_STATIC_PLATFORMS: Final[frozenset[str]] = frozenset(
    {
        "any",
        "win32",
        "win_arm64",
        "win_amd64",
        "win_ia64",
        "manylinux1_x86_64",
        "manylinux1_i686",
        "manylinux2010_x86_64",
        "manylinux2010_i686",
        "manylinux2014_x86_64",
        "manylinux2014_i686",
        "manylinux2014_aarch64",
        "manylinux2014_armv7l",
        "manylinux2014_ppc64",
        "manylinux2014_ppc64le",
        "manylinux2014_s390x",
        "linux_armv6l",
        "linux_armv7l",
    }
)
_MACOSX: Final = re.compile(r"macosx_(?P<major>\d+)_(?P<minor>\d+)_(?P<arch>.*)\Z", re.ASCII)
_MACOSX_ARCHES: Final = frozenset(
    {
        "ppc",
        "ppc64",
        "i386",
        "x86_64",
        "arm64",
        "intel",
        "fat",
        "fat3",
        "fat64",
        "universal",
        "universal2",
    }  # fmt: skip
)
# macOS 10.x only ever raised the minor version; from 11 on, only ``_0`` tags exist.
_MACOSX_MAJORS: Final = frozenset({"11", "12", "13", "14", "15", "26"})
_LINUX: Final = re.compile(r"(?P<libc>many|musl)linux_\d+_\d+_(?P<arch>.*)\Z", re.ASCII)
_MUSLLINUX_ARCHES: Final = frozenset(
    {"x86_64", "i686", "aarch64", "armv7l", "ppc64le", "s390x", "riscv64"}
)
_MANYLINUX_ARCHES: Final = _MUSLLINUX_ARCHES | {"ppc64"}
_IOS: Final = re.compile(
    r"ios_\d+_\d+_(?P<arch>arm64|x86_64)_(?:iphoneos|iphonesimulator)\Z", re.ASCII
)
_ANDROID: Final = re.compile(r"android_\d+_(?:armeabi_v7a|arm64_v8a|x86|x86_64)\Z", re.ASCII)
_PYEMSCRIPTEN: Final = re.compile(r"pyemscripten_\d+_\d+_wasm32\Z", re.ASCII)


def is_pypi_platform_tag(platform: str) -> bool:
    """Whether PyPI accepts ``platform`` (one platform tag, e.g. ``manylinux_2_17_x86_64``)."""
    if platform in _STATIC_PLATFORMS:
        return True
    if match := _MACOSX.match(platform):
        if match["arch"] not in _MACOSX_ARCHES:
            return False
        return match["major"] == "10" or (
            match["major"] in _MACOSX_MAJORS and match["minor"] == "0"
        )
    if match := _LINUX.match(platform):
        arches = _MANYLINUX_ARCHES if match["libc"] == "many" else _MUSLLINUX_ARCHES
        return match["arch"] in arches
    return bool(_IOS.match(platform) or _ANDROID.match(platform) or _PYEMSCRIPTEN.match(platform))


def check_platform_tags(
    parsed: ParsedFilename, *, policy: Policy, problems: list[DistProblem]
) -> None:
    """P108: every platform tag of a wheel is on PyPI's allow-list or the policy's extras.

    (P106, local versions, is checked with the filename: ``parse_filename`` reports it too.)
    """
    platforms = sorted({tag.rsplit("-", 1)[-1] for tag in parsed.tags})
    for platform in platforms:
        if platform in policy.extra_platform_tags or is_pypi_platform_tag(platform):
            continue
        problems.append(
            DistProblem(
                "dist.wheel.platform-tag",
                f"Binary wheel {shown(parsed.filename)} has an unsupported platform tag "
                f"{shown(platform)}.",
            )
        )


def check_new_project_name(
    name: str,
    *,
    policy: Policy,
    similar_project: Callable[[str], str | None] | None = None,
    problems: list[DistProblem],
) -> None:
    """The name rules for a project that does not exist yet (PyPI ``check_project_name``).

    ``similar_project`` maps a :func:`~bastion.core.names.confusable_key` to the name of an
    existing project with that key (or ``None``); the index answers it from its own table.
    """
    if policy.reject_stdlib_names and is_stdlib_name(name):
        problems.append(
            DistProblem(
                "dist.name.stdlib",
                f"The name {shown(name)} isn't allowed: it conflicts with a Python standard "
                "library module name.",
                field="name",
            )
        )
    if is_prohibited_name(name, policy.prohibited_names):
        problems.append(
            DistProblem(
                "dist.name.prohibited",
                f"The name {shown(name)} isn't allowed for a new project.",
                field="name",
            )
        )
    if similar_project is None:
        return
    existing = similar_project(confusable_key(name))
    if existing is not None and normalize_name(existing) != normalize_name(name):
        problems.append(
            DistProblem(
                "dist.name.confusable",
                f"The name {shown(name)} is too similar to the existing project {shown(existing)}.",
                field="name",
            )
        )
