"""Signed metadata (TUF, PEP 458) against a live server: python-tuf's ngclient, and pip through
``bastion tuf proxy`` — untampered it installs, tampered it fails with the proxy's reason.

On SQLite (the embedded default) the repository exists from the first start, with development
keys; on PostgreSQL the test runs ``bastion tuf init`` first, as an operator would.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tuf.ngclient import Updater

from tests.e2e._support import (
    BASTION,
    PYTHON,
    BuiltDist,
    LiveServer,
    clean_environ,
    client_environ,
    describe,
    output_of,
    run,
)
from tests.processes import free_port, stop_process_group


@pytest.fixture(scope="session")
def trusted_root(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``1.root.json``, pinned out of band (here: fetched once, as an operator would publish it)."""
    first = server.get("/tuf/1.root.json")
    if first.status_code == 404:
        assert server.backend == "postgresql", "the embedded default signs from the first start"
        keys = tmp_path_factory.mktemp("tuf-offline")
        # The server reads the online key from its default place, <data dir>/tuf-keys/online.pem.
        server.cli_ok(
            "tuf",
            "init",
            "--keys-dir",
            str(server.data_dir / "tuf-keys"),
            "--root-keys",
            "1",
            "--root-threshold",
            "1",
        )
        del keys
        first = server.get("/tuf/1.root.json")
    assert first.status_code == 200, first.text
    path = tmp_path_factory.mktemp("root-of-trust") / "root.json"
    path.write_bytes(first.content)
    return path


def _updater(server: LiveServer, root: Path, where: Path) -> Updater:
    (where / "metadata").mkdir(parents=True, exist_ok=True)
    (where / "targets").mkdir(parents=True, exist_ok=True)
    return Updater(
        metadata_dir=str(where / "metadata"),
        metadata_base_url=server.url("/tuf/"),
        target_dir=str(where / "targets"),
        target_base_url=server.url("/files/"),
        bootstrap=root.read_bytes(),
    )


def _storage_key(server: LiveServer, project: str, filename: str) -> str:
    page = server.simple_json(project)
    assert page is not None
    (entry,) = [f for f in page["files"] if f["filename"] == filename]
    return entry["url"].split("#")[0].split("/files/", 1)[1]


def test_ngclient_verifies_a_wheel_and_the_simple_pages_after_an_upload(
    server: LiveServer, twine_demo: BuiltDist, trusted_root: Path, tmp_path: Path
) -> None:
    updater = _updater(server, trusted_root, tmp_path)
    updater.refresh()
    key = _storage_key(server, twine_demo.normalized, twine_demo.wheel.name)
    info = updater.get_targetinfo(key)
    assert info is not None, f"{key} is not signed"
    downloaded = updater.download_target(info)
    assert Path(downloaded).read_bytes() == twine_demo.wheel.read_bytes()
    for page, accept in (
        ("index.html", "text/html"),
        ("index.json", "application/vnd.pypi.simple.v1+json"),
    ):
        info = updater.get_targetinfo(f"simple/{twine_demo.normalized}/{page}")
        assert info is not None
        served = server.get(f"/simple/{twine_demo.normalized}/", headers={"Accept": accept})
        info.verify_length_and_hashes(served.content)  # what pip gets is what was signed
    timestamp = server.get("/tuf/timestamp.json")
    assert timestamp.headers["Cache-Control"] == "public, max-age=60"


@contextlib.contextmanager
def _proxy(server: LiveServer, root: Path, where: Path) -> Iterator[str]:
    port = free_port()
    where.mkdir(parents=True, exist_ok=True)
    log = (where / "proxy.log").open("wb")
    process = subprocess.Popen(
        [
            BASTION,
            "tuf",
            "proxy",
            "--root",
            str(root),
            "--index",
            server.base_url,
            "--port",
            str(port),
            "--cache-dir",
            str(where / "proxy-cache"),
        ],
        env=clean_environ(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/simple/"
    finally:
        stop_process_group(process, grace=5)
        log.close()


def _pip_install(index: str, target: Path, project: str) -> subprocess.CompletedProcess[str]:
    return run(
        [
            PYTHON,
            "-m",
            "pip",
            "install",
            "--target",
            str(target),
            "--index-url",
            index,
            "--no-cache-dir",
            "--disable-pip-version-check",
            project,
        ],
        env=client_environ(),
        timeout=300,
    )


def test_pip_installs_through_the_verifying_proxy_and_fails_closed_when_tampered(
    server: LiveServer, chain: dict[str, BuiltDist], trusted_root: Path, tmp_path: Path
) -> None:
    with _proxy(server, trusted_root, tmp_path) as index:
        result = _pip_install(index, tmp_path / "ok", "e2e-top")
        assert result.returncode == 0, describe(result)
        assert (tmp_path / "ok" / "e2e_bottom").is_dir()

    # A new proxy (an empty cache: the first one would answer from its verified copy).
    bottom = chain["bottom"]
    blob = server.files_dir / _storage_key(server, bottom.normalized, bottom.wheel.name)
    original = blob.read_bytes()
    with _proxy(server, trusted_root, tmp_path / "second") as index:
        try:
            blob.write_bytes(bytes([original[0] ^ 1]) + original[1:])  # altered on disk
            result = _pip_install(index, tmp_path / "bad", "e2e-bottom")
        finally:
            blob.write_bytes(original)
        assert result.returncode != 0, describe(result)
        assert "TUF verification failed" in output_of(result), describe(result)
        assert not (tmp_path / "bad" / "e2e_bottom").exists()


def test_bastion_tuf_verify_a_downloaded_file(
    server: LiveServer, twine_demo: BuiltDist, trusted_root: Path, tmp_path: Path
) -> None:
    verified = run(
        [
            BASTION,
            "tuf",
            "verify",
            str(twine_demo.wheel),
            "--root",
            str(trusted_root),
            "--index",
            server.base_url,
        ],
        env=clean_environ(),
    )
    assert verified.returncode == 0, describe(verified)
    forged = tmp_path / twine_demo.wheel.name
    forged.write_bytes(twine_demo.wheel.read_bytes() + b"\0")
    refused = run(
        [
            BASTION,
            "tuf",
            "verify",
            str(forged),
            "--root",
            str(trusted_root),
            "--index",
            server.base_url,
        ],
        env=clean_environ(),
    )
    assert refused.returncode == 1 and "NOT verified" in refused.stderr, describe(refused)
