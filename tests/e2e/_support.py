"""Helpers for the end-to-end suite: sample projects, client environments, a live server handle.

Nothing here starts anything on import; ``conftest.py`` wires these into fixtures.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.processes import stop_process_group

VENV_BIN = Path(sys.executable).parent
PYTHON = sys.executable
BASTION = str(VENV_BIN / "bastion")
UV = str(VENV_BIN / "uv")

# The Accept headers pip and uv really send for simple pages (protocol checklist P13).
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
UV_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
UV_PUBLISH_ACCEPT = "application/json;q=0.9, text/plain;q=0.8, text/html;q=0.7"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"

# Variables that must not leak from the machine or the test process into a server or a client.
_DROPPED_PREFIXES = ("BASTION_", "PIP_", "UV_", "TWINE_", "DJANGO_", "VIRTUAL_ENV", "PYTHONHOME")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def clean_environ() -> dict[str, str]:
    """The test process's environment without any index, client or bastion configuration."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(_DROPPED_PREFIXES)
    }
    # Never go through a proxy to reach the local server.
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def client_environ() -> dict[str, str]:
    """Environment for pip, uv and twine: no machine config, no cache, no colours, wide lines."""
    env = clean_environ()
    env.update(
        {
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_NO_CACHE_DIR": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
            "UV_NO_CONFIG": "1",
            "UV_NO_CACHE": "1",
            "UV_PYTHON_DOWNLOADS": "never",
            "NO_COLOR": "1",
            "TERM": "dumb",
            "COLUMNS": "400",
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        }
    )
    return env


def run(
    args: list[str],
    *,
    env: dict[str, str],
    cwd: Path | None = None,
    input: str | None = None,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        env=env,
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def output_of(result: subprocess.CompletedProcess[str]) -> str:
    """stdout + stderr with whitespace collapsed (rich wraps long lines)."""
    return " ".join(f"{result.stdout}\n{result.stderr}".split())


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"command: {' '.join(map(str, result.args))}\nexit: {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# Sample projects


@dataclass(frozen=True)
class SampleSpec:
    name: str  # the project name as declared
    version: str = "1.0"
    backend: str = "setuptools"  # or "hatchling"
    dependencies: tuple[str, ...] = ()
    requires_python: str = ">=3.8"
    flavour: str = ""  # changes the module's bytes (same name and version, other content)

    @property
    def module(self) -> str:
        return normalize(self.name).replace("-", "_")


@dataclass(frozen=True)
class BuiltDist:
    spec: SampleSpec
    wheel: Path
    sdist: Path

    @property
    def files(self) -> list[Path]:
        return [self.wheel, self.sdist]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def normalized(self) -> str:
        return normalize(self.spec.name)

    def wheel_metadata(self) -> bytes:
        """The exact bytes of the wheel's ``*.dist-info/METADATA`` member."""
        with zipfile.ZipFile(self.wheel) as archive:
            (member,) = [
                n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)
            ]
            return archive.read(member)


def _pyproject(spec: SampleSpec) -> str:
    deps = ", ".join(f'"{d}"' for d in spec.dependencies)
    common = f"""\
        [project]
        name = "{spec.name}"
        version = "{spec.version}"
        description = "A sample project for bastion's end-to-end tests"
        readme = "README.md"
        requires-python = "{spec.requires_python}"
        license = "MIT"
        license-files = ["LICENSE"]
        authors = [{{name = "E2E Tester", email = "e2e@example.com"}}]
        dependencies = [{deps}]
        classifiers = [
            "Programming Language :: Python :: 3",
            "Operating System :: OS Independent",
        ]

        [project.urls]
        Homepage = "https://example.com/{normalize(spec.name)}"
        """
    if spec.backend == "setuptools":
        head = """\
            [build-system]
            requires = ["setuptools>=77"]
            build-backend = "setuptools.build_meta"

            """
        tail = f"""
            [tool.setuptools]
            packages = ["{spec.module}"]
            """
    elif spec.backend == "hatchling":
        head = """\
            [build-system]
            requires = ["hatchling>=1.27"]
            build-backend = "hatchling.build"

            """
        tail = f"""
            [tool.hatch.build.targets.wheel]
            packages = ["{spec.module}"]
            """
    else:  # pragma: no cover - a typo in a test
        raise ValueError(spec.backend)
    return textwrap.dedent(head) + textwrap.dedent(common) + textwrap.dedent(tail)


def write_project(spec: SampleSpec, where: Path) -> Path:
    root = where / f"{spec.module}-{spec.version}{('-' + spec.flavour) if spec.flavour else ''}"
    package = root / spec.module
    package.mkdir(parents=True)
    (root / "pyproject.toml").write_text(_pyproject(spec))
    (package / "__init__.py").write_text(
        f'"""{spec.name} — sample module."""\n\n'
        f'__version__ = "{spec.version}"\nFLAVOUR = "{spec.flavour or "plain"}"\n\n\n'
        f"def hello() -> str:\n    return {spec.module!r}\n"
    )
    (root / "README.md").write_text(
        f"# {spec.name}\n\nA *sample* project for **bastion**'s end-to-end tests.\n\n"
        "- item one\n- item two\n\n```python\nimport this\n```\n"
    )
    (root / "LICENSE").write_text(
        "MIT License\n\nCopyright (c) 2026 E2E Tester\n\n"
        "Permission is hereby granted, free of charge, to any person obtaining a copy of this "
        "software, to deal in the Software without restriction.\n"
    )
    return root


def build_project(spec: SampleSpec, where: Path) -> BuiltDist:
    """Build a wheel and an sdist with ``python -m build --no-isolation``."""
    root = write_project(spec, where)
    out = root / "dist"
    env = clean_environ()
    env["SOURCE_DATE_EPOCH"] = "1767225600"  # reproducible, but flavours still differ
    result = run(
        [PYTHON, "-m", "build", "--no-isolation", "--outdir", str(out), str(root)],
        env=env,
        cwd=root,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"building {spec.name} failed:\n{describe(result)}")
    wheels = sorted(out.glob("*.whl"))
    sdists = sorted(out.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        raise RuntimeError(f"building {spec.name} gave {sorted(p.name for p in out.iterdir())}")
    return BuiltDist(spec=spec, wheel=wheels[0], sdist=sdists[0])


# ---------------------------------------------------------------------------------------------
# The live server

# twine >= 6.1 refuses ``--skip-existing`` before uploading anything unless the repository URL is
# PyPI's own upload hosts (``Settings.verify_feature_capability``), although its skip logic
# (``commands.upload.skip_upload``: a 409, or a 400 whose reason or body says "already exist")
# works with any index that answers like PyPI. To exercise that real logic against bastion, the
# ``--skip-existing`` runs start twine's own ``main`` with only that client-side guard disabled.
TWINE_ALLOWING_SKIP_EXISTING = """\
import sys
import twine.settings
twine.settings.Settings.verify_feature_capability = lambda self: None
from twine.__main__ import main
sys.argv[0] = "twine"
sys.exit(main())
"""


@dataclass
class LiveServer:
    backend: str
    base_url: str
    data_dir: Path
    env: dict[str, str]
    token: str = ""
    password: str = ""
    process: subprocess.Popen[bytes] | None = None
    stderr_path: Path | None = None
    _session: requests.Session | None = field(default=None, repr=False)

    @property
    def simple_url(self) -> str:
        return self.base_url + "/simple/"

    @property
    def upload_url(self) -> str:
        return self.base_url + "/legacy/"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    def blob_path(self, key: str) -> Path:
        from bastion.storage.local import LocalBlobStore

        return LocalBlobStore(self.files_dir).local_path(key)

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "tmp"

    @property
    def http(self) -> requests.Session:
        if self._session is None:
            session = requests.Session()
            session.trust_env = False  # no proxies, no netrc
            self._session = session
        return self._session

    def close(self) -> None:
        """Close the HTTP session (the server process is stopped by whoever started it)."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def server_log(self) -> str:
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``bastion ARGS`` with the server's configuration."""
        return run([BASTION, *args], env=self.env, input=input, timeout=120)

    def cli_ok(self, *args: str, input: str | None = None) -> str:
        result = self.cli(*args, input=input)
        assert result.returncode == 0, describe(result)
        return result.stdout.strip()

    def url(self, path: str) -> str:
        return self.base_url + path

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        kwargs.setdefault("allow_redirects", False)
        return self.http.get(self.url(path), **kwargs)

    def simple_json(self, project: str) -> dict[str, Any] | None:
        """The project's PEP 691 JSON page, or None on 404."""
        response = self.get(f"/simple/{normalize(project)}/", headers={"Accept": SIMPLE_JSON})
        if response.status_code == 404:
            return None
        assert response.status_code == 200, (response.status_code, response.text)
        data: dict[str, Any] = response.json()
        return data

    def simple_files(self, project: str) -> dict[str, str]:
        """filename -> sha256 of the project's files as the simple API lists them ({} on 404)."""
        page = self.simple_json(project)
        if page is None:
            return {}
        return {f["filename"]: f["hashes"]["sha256"] for f in page["files"]}

    def stored_blobs(self) -> set[str]:
        """Every file name in the local blob store."""
        if not self.files_dir.exists():
            return set()
        return {p.name for p in self.files_dir.rglob("*") if p.is_file()}

    def spooled(self) -> list[Path]:
        if not self.spool_dir.exists():
            return []
        return [p for p in self.spool_dir.iterdir() if p.is_file()]

    def twine(
        self, *files: Path, token: str | None = None, extra: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        """``twine upload`` in a subprocess; see ``TWINE_ALLOWING_SKIP_EXISTING``."""
        launcher = (
            ["-c", TWINE_ALLOWING_SKIP_EXISTING] if "--skip-existing" in extra else ["-m", "twine"]
        )
        return run(
            [
                PYTHON,
                *launcher,
                "upload",
                "--repository-url",
                self.upload_url,
                "-u",
                "__token__",
                "-p",
                token if token is not None else self.token,
                "--non-interactive",
                "--disable-progress-bar",
                *extra,
                *map(str, files),
            ],
            env=client_environ(),
            timeout=180,
        )

    def twine_ok(self, *files: Path, token: str | None = None, extra: tuple[str, ...] = ()) -> str:
        result = self.twine(*files, token=token, extra=extra)
        assert result.returncode == 0, (
            describe(result) + "\n--- server log ---\n" + (self.server_log()[-4000:])
        )
        return output_of(result)


def _metadata_version(dist: BuiltDist) -> str:
    match = re.search(rb"^Metadata-Version: *(\S+)", dist.wheel_metadata(), re.MULTILINE)
    assert match is not None
    return match.group(1).decode()


def upload_form(
    dist: BuiltDist,
    *,
    which: str = "wheel",
    overrides: dict[str, str | None] | None = None,
) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
    """A hand-built legacy upload form (``data``, ``files``) for ``requests``."""
    path = dist.wheel if which == "wheel" else dist.sdist
    content = path.read_bytes()
    fields: dict[str, str | None] = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": _metadata_version(dist),
        "name": dist.spec.name,
        "version": dist.spec.version,
        "filetype": "bdist_wheel" if which == "wheel" else "sdist",
        "pyversion": "py3" if which == "wheel" else "source",
        "summary": "A sample project for bastion's end-to-end tests",
        "requires_python": dist.spec.requires_python,
        "sha256_digest": sha256_of(content),
        "blake2_256_digest": hashlib.blake2b(content, digest_size=32).hexdigest(),
    }
    fields.update(overrides or {})
    data = {key: value for key, value in fields.items() if value is not None}
    files = {"content": (path.name, content, "application/octet-stream")}
    return data, files


def wheel_form(
    path: Path, *, sha256_digest: str | None = None
) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
    """The legacy upload form for a wheel built by ``tests.unit.core.builders.make_wheel``
    (metadata 2.1; name and version from its file name), as ``requests`` sends it."""
    content = path.read_bytes()
    name, version = path.name.split("-")[:2]
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": name,
        "version": version,
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "sha256_digest": sha256_digest or sha256_of(content),
    }
    return fields, {"content": (path.name, content, "application/octet-stream")}


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


SERVER_STOP_GRACE = 15.0  # gunicorn finishes in-flight requests on SIGTERM; then SIGKILL


def serve(
    live: LiveServer, *, workers: int, timeout: float, extra: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """Start ``bastion serve`` for ``live`` (on its base URL's port) and wait for /healthz.

    The server runs in its own process group (stop it with ``stop_process_group``). If it
    exits or does not answer within ``timeout`` seconds, it is stopped and the test fails
    with the end of its log.
    """
    assert live.stderr_path is not None
    port = urlsplit(live.base_url).port
    stdout_path = live.stderr_path.with_name("server.stdout.log")
    with stdout_path.open("wb") as out, live.stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [
                BASTION,
                "serve",
                *extra,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=live.env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    live.process = process
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"bastion serve ({live.backend}) exited with {process.returncode} before "
                f"answering /healthz:\n{live.server_log()[-6000:]}",
                pytrace=False,
            )
        try:
            response = live.http.get(live.url("/healthz"), timeout=2)
            if response.status_code == 200:
                return process
            last = f"{response.status_code} {response.text[:200]}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    stop_process_group(process, grace=SERVER_STOP_GRACE)
    pytest.fail(
        f"bastion serve ({live.backend}) did not answer /healthz within {timeout:.0f} s "
        f"(last: {last}):\n{live.server_log()[-6000:]}",
        pytrace=False,
    )
