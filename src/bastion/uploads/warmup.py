"""Warm a worker's upload validation before it takes its first request.

A fresh worker's first uploads were measured at 5-10 times the time of later ones: the first
loads the archive and metadata modules, and CPython specialises a function's bytecode only
after it has run a few times. ``warm_up`` validates a small wheel and sdist, made here in a
temporary directory, a few times over (pure: no database, no storage), so that the worker's
first real uploads run at the speed of its later ones. Called by ``bastion.wsgi`` as a worker
loads the application, before it accepts connections.

The descriptions are Markdown, as most are today: their renderer (readme-renderer's Markdown
module, ~9 ms to load and ~4 MB per worker) was otherwise loaded by the first such upload.
reStructuredText's (docutils, several times that) stays unloaded until an upload needs it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

from bastion.core.dists import DistributionRejected, validate_distribution

log = logging.getLogger(__name__)

ROUNDS = 12  # CPython 3.11 specialises a code object after 8 calls

_METADATA = (
    b"Metadata-Version: 2.1\n"
    b"Name: bastion-warm-up\n"
    b"Version: 1.0\n"
    b"Summary: A distribution a new worker validates before its first request\n"
    b"Author-email: Bastion <warm-up@example.invalid>\n"
    b"License: MIT\n"
    b"Classifier: Programming Language :: Python :: 3\n"
    b"Requires-Python: >=3.8\n"
    b"Requires-Dist: packaging>=20\n"
    b"Description-Content-Type: text/markdown\n"
    b"\n"
    b"Validated by *each* new worker.\n"
)


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _wheel(directory: Path) -> Path:
    path = directory / "bastion_warm_up-1.0-py3-none-any.whl"
    info = "bastion_warm_up-1.0.dist-info"
    members = {
        "bastion_warm_up/__init__.py": b"",
        f"{info}/METADATA": _METADATA,
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: bastion\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = [_record_line(name, data) for name, data in members.items()]
    members[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _sdist(directory: Path) -> Path:
    path = directory / "bastion_warm_up-1.0.tar.gz"
    top = "bastion_warm_up-1.0"
    members = {
        f"{top}/PKG-INFO": _METADATA,
        f"{top}/pyproject.toml": b'[project]\nname = "bastion-warm-up"\nversion = "1.0"\n',
        f"{top}/bastion_warm_up/__init__.py": b"",
    }
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            member.mode = 0o644
            archive.addfile(member, io.BytesIO(data))
    return path


def warm_up(rounds: int = ROUNDS) -> None:
    """Validate the two distributions ``rounds`` times each; a failure is logged, not raised
    (a worker that could not warm up serves all the same)."""
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="bastion-warm-up-") as directory:
            paths = (_wheel(Path(directory)), _sdist(Path(directory)))
            for _ in range(rounds):
                for path in paths:
                    validate_distribution(path, filename=path.name, new_project=True)
    except (OSError, DistributionRejected) as exc:
        log.warning("the upload warm-up failed (uploads are not affected): %s", exc)
        return
    log.debug("upload warm-up: %.1f ms", (time.perf_counter() - started) * 1000)
