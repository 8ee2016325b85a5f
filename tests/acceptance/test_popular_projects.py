"""Real-world acceptance (issue 3): popular projects' files, as their maintainers published them.

Strict validation must not reject what the ecosystem really publishes. A session fixture fetches
the pinned wheels and sdists below with ``pip download --no-deps`` (pure and binary wheels for
CPython 3.11 on manylinux x86_64, a few for Windows, macOS and musllinux, and sdists), caches
them in ``$BASTION_ACCEPTANCE_CACHE`` (default ``~/.cache/bastion-acceptance``) so re-runs need
no network, and every file is its own test: it must be accepted, unless it is listed in
:data:`KNOWN_REJECTIONS` with the one code it must be rejected with and why the rule stands.

Versions are pinned so the verdicts are stable; bump them (and re-check the allow-list) from
time to time. Without the registry the tests are skipped with a message, except with
``CI=true``, where they fail.

Not here, on purpose: sdists of projects whose build backend needs more than the package
registry just to *prepare metadata* (``pip download`` of an sdist runs that hook):
maturin (pydantic-core, cryptography, orjson: ``cargo metadata`` fetches from crates.io) and
meson-python (numpy: no metadata hook, so pip compiles the whole project). Pillow's sdist
(~50 MB) and grpcio's are left out for size.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

from bastion.core.dists import DistributionRejected, validate_distribution
from tests.acceptance._support import (
    PYTHON,
    describe_problems,
    file_digests,
    metadata_member,
    unavailable,
)

# -- what is fetched --------------------------------------------------------------------------

#: Wheels for CPython 3.11 on x86_64 Linux (pure wheels are what they are on every platform).
LINUX_WHEELS = {
    "attrs": "26.1.0",
    "certifi": "2026.10.19.post1",
    "cffi": "2.1.1",
    "charset-normalizer": "3.5.3",
    "click": "8.5.1",
    "colorama": "0.4.6",
    "cryptography": "50.0.2",
    "django": "5.2.19",
    "docutils": "0.23",
    "flask": "3.1.3",
    "grpcio": "1.85.3",
    "idna": "3.20",
    "jinja2": "3.1.6",
    "lxml": "6.1.3",
    "markupsafe": "3.0.4",
    "msgpack": "1.2.4",
    "numpy": "2.4.6",
    "orjson": "3.13.0",
    "packaging": "26.4",
    "pillow": "13.0.0",
    "pip": "26.3",
    "platformdirs": "4.14.9",
    "pluggy": "1.7.0",
    "psutil": "7.2.2",
    "psycopg-binary": "3.3.9",
    "pydantic": "2.14.4",
    "pydantic-core": "2.50.5",
    "pygments": "2.21.0",
    "python-dateutil": "4.0.0",
    "pytz": "2026.6",
    "pyyaml": "6.0.4",
    "regex": "2026.11.19",
    "requests": "2.34.2",
    "rich": "15.0.0",
    "setuptools": "84.2.1",
    "six": "1.17.0",
    "sqlalchemy": "2.1.9",
    "toml": "0.10.2",
    "tomli": "2.5.0",
    "typing-extensions": "4.16.0",
    "urllib3": "2.8.0",
    "werkzeug": "3.1.9",
    "wheel": "0.48.0",
}

#: Binary wheels for other platforms: (project, version, pip --platform).
OTHER_PLATFORM_WHEELS = (
    ("markupsafe", "3.0.4", "win_amd64"),
    ("pyyaml", "6.0.4", "macosx_11_0_arm64"),
    ("orjson", "3.13.0", "macosx_11_0_arm64"),
    ("charset-normalizer", "3.5.3", "musllinux_1_2_x86_64"),
)

SDISTS = {
    "attrs": "26.1.0",
    "certifi": "2026.10.18",
    "cffi": "2.1.1",
    "charset-normalizer": "3.5.3",
    "click": "8.5.1",
    "django": "5.2.19",
    "docopt": "0.6.2",  # 2014, distutils, Metadata-Version 1.1; still widely installed
    "flask": "3.1.3",
    "idna": "3.20",
    "jinja2": "3.1.6",
    "lxml": "6.1.3",
    "markupsafe": "3.0.4",
    "packaging": "26.4",
    "pip": "26.3",
    "psycopg": "3.3.9",
    "pydantic": "2.14.4",
    "python-dateutil": "4.0.0",
    "pytz": "2026.6",
    "pyyaml": "6.0.4",
    "requests": "2.34.2",
    "rich": "15.0.0",
    "setuptools": "84.2.1",
    "six": "1.17.0",
    "sqlalchemy": "2.1.9",
    "toml": "0.10.2",
    "typing-extensions": "4.16.0",
    "urllib3": "2.8.0",
    "werkzeug": "3.1.9",
}

#: Older files still installed every day, each chosen for what it exercises.
OLDER_FILES = (
    ("setuptools", "75.8.0", "wheel"),  # Metadata-Version 2.2
    ("annotated-types", "0.7.0", "wheel"),  # Metadata-Version 2.3 (hatchling 1.24)
    ("iniconfig", "2.0.0", "wheel"),  # License-Expression under 2.1 (rejected, see below)
    ("filelock", "3.16.1", "wheel"),  # License-Expression under 2.3 (rejected, see below)
    ("markupsafe", "2.1.5", "sdist"),  # MarkupSafe-2.1.5.tar.gz: name before PEP 625
    ("simplegeneric", "0.8.1", "sdist"),  # a .zip sdist (2012)
)

LINUX_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
PYTHON_VERSION = "3.11"

# -- files that really break a rule -----------------------------------------------------------

#: (filename glob, the code it must be rejected with, why the rule stands) -- one line each.
#: Each entry must match a fetched file and that file must fail with exactly this code, so the
#: list cannot go stale. Anything rejected that is not here is a test failure.
# fmt: off
KNOWN_REJECTIONS: tuple[tuple[str, str, str], ...] = (
    ("MarkupSafe-2.1.5.tar.gz", "dist.filename.not-normalized", "P93/PEP 625: an sdist is named by its normalized name (markupsafe-2.1.5.tar.gz); PyPI rejects other names now"),  # noqa: E501
    ("simplegeneric-0.8.1.zip", "dist.filename.unsupported-type", "P93/PEP 625: an sdist is a .tar.gz; PyPI rejects .zip sdists now, and one format means one parser to harden"),  # noqa: E501
    ("iniconfig-2.0.0-py3-none-any.whl", "dist.metadata.field-too-new", "P98: License-Expression needs Metadata-Version 2.4; hatchling 1.12 wrote the PEP 639 draft under 2.1, which packaging and PyPI now reject"),  # noqa: E501
    ("filelock-3.16.1-py3-none-any.whl", "dist.metadata.field-too-new", "P98: License-Expression under Metadata-Version 2.3 (hatchling 1.25, PEP 639 draft); readers of 2.3 do not know the field"),  # noqa: E501
)
# fmt: on

# -- fetching ---------------------------------------------------------------------------------

PIP_TIMEOUT = 900
FETCH_WORKERS = 4
_OFFLINE_HINTS = (
    "could not fetch url",
    "max retries exceeded",
    "newconnectionerror",
    "name resolution",
    "connection refused",
    "network is unreachable",
    "read timed out",
    "no matching distribution found",
)


@dataclass(frozen=True)
class Download:
    """One file to fetch: a pinned requirement, as a wheel (for a platform) or as an sdist."""

    project: str
    version: str
    kind: str  # "wheel" or "sdist"
    platform: str | None = None  # wheels: a single --platform; None means LINUX_PLATFORMS

    @property
    def id(self) -> str:
        suffix = f"-{self.platform}" if self.platform else ""
        return f"{self.project}-{self.version}-{self.kind}{suffix}"

    def pip_arguments(self) -> list[str]:
        requirement = f"{self.project}=={self.version}"
        if self.kind == "sdist":
            # Only this project from source: its build dependencies may come as wheels.
            return ["--no-binary", self.project, requirement]
        platforms = (self.platform,) if self.platform else LINUX_PLATFORMS
        arguments = ["--only-binary", ":all:", "--python-version", PYTHON_VERSION]
        for platform in platforms:
            arguments += ["--platform", platform]
        return [*arguments, requirement]

    def matches(self, filename: str) -> bool:
        """Whether ``filename`` is this project's file of this version and kind."""
        if self.kind == "wheel":
            if not filename.endswith(".whl"):
                return False
            name, version, _, _ = parse_wheel_filename(filename)
        else:
            if not filename.endswith((".tar.gz", ".zip")):  # .zip: legacy sdists
                return False
            name, version = parse_sdist_filename(filename)
        return name == canonicalize_name(self.project) and str(version) == self.version


DOWNLOADS: tuple[Download, ...] = (
    *(Download(project, version, "wheel") for project, version in LINUX_WHEELS.items()),
    *(
        Download(project, version, "wheel", platform)
        for project, version, platform in OTHER_PLATFORM_WHEELS
    ),
    *(Download(project, version, "sdist") for project, version in SDISTS.items()),
    *(Download(project, version, kind) for project, version, kind in OLDER_FILES),
)


def cache_dir() -> Path:
    configured = os.environ.get("BASTION_ACCEPTANCE_CACHE")
    root = Path(configured) if configured else Path.home() / ".cache" / "bastion-acceptance"
    return root / "popular"


class Cache:
    """Fetched files in one directory, with a manifest: download id -> filename and sha256.

    A file is reused only if it is in the manifest and still has the recorded digest, so an
    interrupted or tampered download is fetched again rather than judged.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.manifest_path = directory / "manifest.json"
        directory.mkdir(parents=True, exist_ok=True)
        try:
            self.manifest: dict[str, dict[str, str]] = json.loads(self.manifest_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            self.manifest = {}

    def cached(self, download: Download) -> Path | None:
        entry = self.manifest.get(download.id)
        if entry is None:
            return None
        path = self.directory / entry["filename"]
        if not path.is_file() or file_digests(path)["sha256"] != entry["sha256"]:
            return None
        return path

    def record(self, download: Download, path: Path) -> None:
        self.manifest[download.id] = {
            "filename": path.name,
            "sha256": file_digests(path)["sha256"],
        }

    def save(self) -> None:
        temporary = self.manifest_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.manifest, indent=1, sort_keys=True))
        temporary.replace(self.manifest_path)


@dataclass(frozen=True)
class Fetched:
    path: Path | None
    #: Why there is no file: pip's output, and whether it looks like the registry is unreachable.
    error: str = ""
    offline: bool = False


def _pip_download(download: Download, cache: Cache) -> Fetched:
    with tempfile.TemporaryDirectory(dir=cache.directory, prefix=".fetch-") as scratch:
        command = [
            PYTHON, "-m", "pip", "download", "--no-deps", "--dest", scratch,
            *download.pip_arguments(),
        ]  # fmt: skip
        env = dict(os.environ, PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
        env["PIP_PROGRESS_BAR"] = "off"
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=PIP_TIMEOUT, env=env, check=False
            )
        except subprocess.TimeoutExpired:
            return Fetched(None, f"pip download timed out after {PIP_TIMEOUT}s", offline=True)
        output = f"$ {' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        files = [path for path in Path(scratch).iterdir() if download.matches(path.name)]
        if result.returncode != 0 or len(files) != 1:
            offline = any(hint in output.lower() for hint in _OFFLINE_HINTS)
            return Fetched(None, output, offline=offline)
        target = cache.directory / files[0].name
        shutil.move(files[0], target)
        return Fetched(target)


@pytest.fixture(scope="session")
def popular_files() -> Iterator[dict[str, Fetched]]:
    """Every download of :data:`DOWNLOADS`, from the cache or fetched now (in parallel)."""
    cache = Cache(cache_dir())
    fetched: dict[str, Fetched] = {}
    missing = []
    for download in DOWNLOADS:
        path = cache.cached(download)
        if path is None:
            missing.append(download)
        else:
            fetched[download.id] = Fetched(path)
    if missing:
        # One fetch first: if the registry is unreachable, say so once instead of 75 times.
        first = _pip_download(missing[0], cache)
        if first.offline:
            for download in missing:
                fetched[download.id] = first
        else:
            with ThreadPoolExecutor(max_workers=FETCH_WORKERS) as pool:
                rest = pool.map(lambda download: _pip_download(download, cache), missing[1:])
                for download, result in zip(missing, [first, *rest], strict=True):
                    fetched[download.id] = result
                    if result.path is not None:
                        cache.record(download, result.path)
            cache.save()
    yield fetched


def _fetched_path(popular_files: dict[str, Fetched], download: Download) -> Path:
    result = popular_files[download.id]
    if result.path is not None:
        return result.path
    if result.offline:
        unavailable(f"could not fetch {download.id} from the package registry:\n{result.error}")
    pytest.fail(f"pip download of {download.id} failed:\n{result.error}", pytrace=False)


# -- the tests --------------------------------------------------------------------------------


def _expected_rejection(filename: str) -> tuple[str, str, str] | None:
    entries = [entry for entry in KNOWN_REJECTIONS if fnmatch.fnmatchcase(filename, entry[0])]
    assert len(entries) <= 1, f"{filename} matches several allow-list entries: {entries}"
    return entries[0] if entries else None


@pytest.mark.parametrize("download", DOWNLOADS, ids=[download.id for download in DOWNLOADS])
def test_published_file(popular_files: dict[str, Fetched], download: Download) -> None:
    path = _fetched_path(popular_files, download)
    expected = _expected_rejection(path.name)

    rejection: DistributionRejected | None = None
    try:
        dist = validate_distribution(path, filename=path.name)
    except DistributionRejected as rejected:
        rejection = rejected  # judged below, so a failure shows the problems, not a traceback

    if rejection is not None:
        found = describe_problems(rejection.problems)
        if expected is None:
            pytest.fail(f"{path.name} was rejected:\n{found}", pytrace=False)
        assert set(rejection.codes) == {expected[1]}, (
            f"{path.name} is allow-listed for {expected[1]} only, but:\n{found}"
        )
        return
    assert expected is None, (
        f"{path.name} is allow-listed as rejected with {expected[1]} ({expected[2]}), "
        "but was accepted: remove the entry"
    )
    assert dist.name == canonicalize_name(download.project)
    assert dist.version == download.version
    assert dist.packagetype == ("bdist_wheel" if download.kind == "wheel" else "sdist")
    assert dist.size == path.stat().st_size
    assert dist.hashes.sha256 == file_digests(path)["sha256"]
    _, member_bytes = metadata_member(path)
    assert dist.metadata_bytes == member_bytes
    assert dist.metadata_sha256 == hashlib.sha256(member_bytes).hexdigest()


def test_every_known_rejection_matches_a_fetched_file(popular_files: dict[str, Fetched]) -> None:
    """An allow-list entry whose file is no longer fetched is stale: remove or update it."""
    names = [result.path.name for result in popular_files.values() if result.path is not None]
    if len(names) < len(DOWNLOADS):
        unavailable("not every popular file could be fetched; cannot check the allow-list")
    for pattern, code, reason in KNOWN_REJECTIONS:
        assert any(fnmatch.fnmatchcase(name, pattern) for name in names), (
            f"allow-list entry {pattern!r} ({code}: {reason}) matches no fetched file"
        )
