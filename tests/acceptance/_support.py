"""Helpers shared by the acceptance tests: independent reads of an artifact, and skipping.

Everything here deliberately avoids ``bastion.core.dists``: these are the second opinion the
validator's answers are compared against.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

import pytest

VENV_BIN = Path(sys.executable).parent
PYTHON = sys.executable
BASTION = str(VENV_BIN / "bastion")
UV = str(VENV_BIN / "uv")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip with ``reason``; in CI (``CI=true``) fail instead, so nothing is silently not run."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: not skipping)", pytrace=False)
    pytest.skip(reason)


def metadata_member(path: Path) -> tuple[str, bytes]:
    """The path and exact bytes of a wheel's METADATA or an sdist's top-level PKG-INFO.

    Located from the archive's own layout, not from the filename, so a filename/layout
    disagreement shows up as a failed comparison rather than being papered over.
    """
    if path.name.endswith(".whl"):
        with zipfile.ZipFile(path) as archive:
            names = [
                name
                for name in archive.namelist()
                if name.count("/") == 1 and name.endswith(".dist-info/METADATA")
            ]
            assert len(names) == 1, f"{path.name}: METADATA members {names}"
            return names[0], archive.read(names[0])
    with tarfile.open(path, "r:gz") as archive:
        members = [
            member
            for member in archive.getmembers()
            if member.isreg() and member.name.count("/") == 1 and member.name.endswith("/PKG-INFO")
        ]
        assert len(members) == 1, f"{path.name}: PKG-INFO members {[m.name for m in members]}"
        stream = archive.extractfile(members[0])
        assert stream is not None
        return members[0].name, stream.read()


def file_digests(path: Path) -> dict[str, str]:
    """sha256, blake2b-256 and md5 of the whole file, computed without bastion."""
    sha256 = hashlib.sha256()
    blake2b = hashlib.blake2b(digest_size=32)
    md5 = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            sha256.update(chunk)
            blake2b.update(chunk)
            md5.update(chunk)
    return {
        "sha256": sha256.hexdigest(),
        "blake2b_256": blake2b.hexdigest(),
        "md5": md5.hexdigest(),
    }


def describe_problems(problems: Iterable[Any]) -> str:
    """One indented line per problem of a rejection: code, field and message."""
    return "\n".join(f"  {p.code} [{p.field}]: {p.message}" for p in problems)


def header_values(metadata: bytes, field: str) -> list[str]:
    """Every value of a single-line header field of a core metadata file, in file order."""
    head = metadata.split(b"\n\n", 1)[0].decode("utf-8")
    prefix = field.lower() + ":"
    return [
        line[len(prefix) :].strip() for line in head.splitlines() if line.lower().startswith(prefix)
    ]


def header_value(metadata: bytes, field: str) -> str:
    """The only value of a single-use header field of a core metadata file."""
    values = header_values(metadata, field)
    assert len(values) == 1, f"{field}: {values}"
    return values[0]
