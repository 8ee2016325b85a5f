"""Publish with twine and uv, install with pip and uv, restrict tokens with pypitoken."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pypitoken import Token

from tests.e2e._support import (
    PYTHON,
    UV,
    BuiltDist,
    LiveServer,
    client_environ,
    describe,
    output_of,
    run,
    sha256_of,
)

pytestmark = pytest.mark.e2e


# ---------------------------------------------------------------------------------------------
# twine


def test_twine_upload_lists_wheel_and_sdist(server: LiveServer, twine_demo: BuiltDist) -> None:
    files = server.simple_files(twine_demo.name)
    assert files == {path.name: sha256_of(path.read_bytes()) for path in twine_demo.files}


def test_twine_skip_existing_reupload_succeeds(server: LiveServer, twine_demo: BuiltDist) -> None:
    before = server.simple_files(twine_demo.name)
    server.twine_ok(*twine_demo.files, extra=("--skip-existing",))
    assert server.simple_files(twine_demo.name) == before


def test_identical_reupload_without_skip_existing_is_ok(
    server: LiveServer, twine_demo: BuiltDist
) -> None:
    # P72: the same file name with the same content is a 200 no-op, so retries are safe.
    before = server.simple_files(twine_demo.name)
    blobs = server.stored_blobs()
    server.twine_ok(*twine_demo.files)
    assert server.simple_files(twine_demo.name) == before
    assert server.stored_blobs() == blobs


def test_other_content_under_a_used_filename_is_refused(
    server: LiveServer, twine_demo: BuiltDist, sample_dists: dict[str, BuiltDist]
) -> None:
    altered = sample_dists["twine_altered"]
    before = server.simple_files(twine_demo.name)
    blobs = server.stored_blobs()
    result = server.twine(altered.wheel)
    assert result.returncode != 0, describe(result)
    text = output_of(result)
    assert "400" in text, describe(result)
    assert "File already exists" in text, describe(result)
    assert server.simple_files(twine_demo.name) == before
    assert server.stored_blobs() == blobs


def test_other_content_under_a_used_filename_is_skipped_with_skip_existing(
    server: LiveServer, twine_demo: BuiltDist, sample_dists: dict[str, BuiltDist]
) -> None:
    altered = sample_dists["twine_altered"]
    before = server.simple_files(twine_demo.name)
    output = server.twine_ok(*altered.files, extra=("--skip-existing",))
    assert "Skipping" in output
    assert server.simple_files(twine_demo.name) == before


def test_twine_with_a_wrong_token_fails(
    server: LiveServer, sample_dists: dict[str, BuiltDist]
) -> None:
    dist = sample_dists["reject"]
    result = server.twine(dist.wheel, token="bastion-not-a-real-token")
    assert result.returncode != 0, describe(result)
    assert "403" in output_of(result), describe(result)
    assert server.simple_json(dist.name) is None


# ---------------------------------------------------------------------------------------------
# uv publish


def test_uv_publish(server: LiveServer, sample_dists: dict[str, BuiltDist]) -> None:
    dist = sample_dists["uv"]
    result = run(
        [
            UV,
            "publish",
            "--no-config",
            "--publish-url",
            server.upload_url,
            "--token",
            server.token,
            *map(str, dist.files),
        ],
        env=client_environ(),
    )
    assert result.returncode == 0, describe(result)
    expected = {path.name: sha256_of(path.read_bytes()) for path in dist.files}
    assert server.simple_files("e2e-uv-demo") == expected
    # The display name is kept; the project lives under the normalized name.
    info = server.get("/pypi/e2e-uv-demo/json").json()["info"]
    assert info["name"] == "E2E_Uv.Demo"

    # Publishing the same files again with --check-url: uv finds them in the index and skips.
    again = run(
        [
            UV,
            "publish",
            "--no-config",
            "--publish-url",
            server.upload_url,
            "--token",
            server.token,
            "--check-url",
            server.simple_url,
            *map(str, dist.files),
        ],
        env=client_environ(),
    )
    assert again.returncode == 0, describe(again)
    assert "skipping" in output_of(again).lower(), describe(again)
    assert server.simple_files("e2e-uv-demo") == expected


# ---------------------------------------------------------------------------------------------
# pip install and uv pip install, the index as the only source


def _fresh_venv(where: Path, *, with_pip: bool) -> Path:
    args = [PYTHON, "-m", "venv", str(where)]
    if not with_pip:
        args.insert(3, "--without-pip")
    result = run(args, env=client_environ(), timeout=180)
    assert result.returncode == 0, describe(result)
    return where / "bin" / "python"


def _check_chain_installed(python: Path, uses_pip: bool) -> None:
    env = client_environ()
    if uses_pip:
        listed = run([str(python), "-m", "pip", "list", "--format=json"], env=env)
        assert listed.returncode == 0, describe(listed)
        names = {entry["name"].lower() for entry in json.loads(listed.stdout)}
    else:
        listed = run(
            [UV, "pip", "list", "--no-config", "--python", str(python), "--format=json"], env=env
        )
        assert listed.returncode == 0, describe(listed)
        names = {entry["name"].lower() for entry in json.loads(listed.stdout)}
    assert {"e2e-top", "e2e-middle", "e2e-bottom"} <= names, names
    imported = run(
        [
            str(python),
            "-c",
            "import e2e_top, e2e_middle, e2e_bottom; "
            "print(e2e_top.hello(), e2e_middle.hello(), e2e_bottom.hello())",
        ],
        env=env,
    )
    assert imported.returncode == 0, describe(imported)
    assert imported.stdout.split() == ["e2e_top", "e2e_middle", "e2e_bottom"]


def test_pip_install_resolves_the_chain(
    server: LiveServer, chain: dict[str, BuiltDist], tmp_path: Path
) -> None:
    python = _fresh_venv(tmp_path / "venv", with_pip=True)
    result = run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--index-url",
            server.simple_url,
            "--no-cache-dir",
            "--disable-pip-version-check",
            "e2e-top",
        ],
        env=client_environ(),
        timeout=300,
    )
    assert result.returncode == 0, describe(result)
    _check_chain_installed(python, uses_pip=True)


def test_uv_pip_install_resolves_the_chain(
    server: LiveServer, chain: dict[str, BuiltDist], tmp_path: Path
) -> None:
    python = _fresh_venv(tmp_path / "venv", with_pip=False)
    result = run(
        [
            UV,
            "pip",
            "install",
            "--no-config",
            "--python",
            str(python),
            "--index-url",
            server.simple_url,
            "--no-cache",
            "e2e-top",
        ],
        env=client_environ(),
        timeout=300,
    )
    assert result.returncode == 0, describe(result)
    _check_chain_installed(python, uses_pip=False)


# ---------------------------------------------------------------------------------------------
# pypitoken: attenuate a bastion token with PyPI's own tooling


def test_pypitoken_restricted_token(server: LiveServer, sample_dists: dict[str, BuiltDist]) -> None:
    allowed, other = sample_dists["scoped_a"], sample_dists["scoped_b"]
    token = Token.load(server.token)
    token.restrict(project_names=[allowed.normalized])
    restricted = token.dump()
    assert restricted != server.token
    assert restricted.startswith("bastion-")

    server.twine_ok(*allowed.files, token=restricted)
    assert set(server.simple_files(allowed.name)) == {p.name for p in allowed.files}

    blobs = server.stored_blobs()
    refused = server.twine(other.wheel, token=restricted)
    assert refused.returncode != 0, describe(refused)
    assert "403" in output_of(refused), describe(refused)
    assert server.simple_json(other.name) is None
    assert server.stored_blobs() == blobs
