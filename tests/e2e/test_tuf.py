"""Signed metadata (TUF, PEP 458) against a live server: python-tuf's ngclient, and pip and uv
through ``bastion tuf proxy`` — untampered they install, tampered they fail with the proxy's
reason. The attacks on the proxy: a stored file altered, an old timestamp or snapshot served
again (rollback), metadata served past its expiry (freeze: the proxy's clock moved two days on),
a hash bin signed by a key the targets role does not trust. A yank (``bastion release yank``) and
a deletion (the manage page, by an Owner) change the signed simple page and the targets.

On SQLite (the embedded default) the repository exists from the first start, with development
keys; on PostgreSQL the test runs ``bastion tuf init`` first, as an operator would.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import time_machine
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, SuccinctRoles
from tuf.api.serialization.json import JSONSerializer
from tuf.ngclient import Updater

from bastion.signing import proxy as tuf_proxy
from tests.e2e._support import (
    BASTION,
    PYTHON,
    SIMPLE_JSON,
    UV,
    BuiltDist,
    LiveServer,
    clean_environ,
    client_environ,
    describe,
    output_of,
    run,
)
from tests.e2e.test_tokens_web import enrolled_browser
from tests.processes import free_port, stop_process_group
from tests.unit.core.builders import make_wheel


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
    blob = server.blob_path(_storage_key(server, bottom.normalized, bottom.wheel.name))
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


# --- the database of the live server, for the attacks ---------------------------------------


def _sql(server: LiveServer, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the live server's database (SQLite file or PostgreSQL), committed."""
    if server.backend == "sqlite":
        connection = sqlite3.connect(server.data_dir / "bastion.sqlite3", timeout=30)
        try:
            rows = connection.execute(query.replace("%s", "?"), list(params)).fetchall()
            connection.commit()
            return rows
        finally:
            connection.close()
    with psycopg.connect(server.env["BASTION_DATABASE_URL"]) as connection:
        cursor = connection.execute(query, list(params))
        return cursor.fetchall() if cursor.description else []


def _current_version(server: LiveServer, role: str) -> int:
    ((version,),) = _sql(server, "SELECT version FROM signing_currentrole WHERE role = %s", [role])
    return int(version)


def _metadata(server: LiveServer, role: str, version: int) -> bytes:
    ((body,),) = _sql(
        server,
        "SELECT body FROM signing_signedmetadata WHERE role = %s AND version = %s",
        [role, version],
    )
    return bytes(body)


def _set_metadata(server: LiveServer, role: str, version: int, body: bytes) -> None:
    _sql(
        server,
        "UPDATE signing_signedmetadata SET body = %s WHERE role = %s AND version = %s",
        [body, role, version],
    )


def _refused(result: subprocess.CompletedProcess[str], reason: str) -> None:
    """The installer failed, showing the proxy's refusal and ngclient's reason."""
    assert result.returncode != 0, describe(result)
    said = output_of(result)
    assert "TUF verification failed" in said and reason in said, describe(result)


# --- uv -------------------------------------------------------------------------------------


def _uv_install(index: str, venv: Path, project: str) -> subprocess.CompletedProcess[str]:
    created = run([UV, "venv", "--python", PYTHON, str(venv)], env=client_environ())
    assert created.returncode == 0, describe(created)
    return run(
        [
            UV,
            "pip",
            "install",
            "--python",
            str(venv / "bin" / "python"),
            "--index-url",
            index,
            project,
        ],
        env=client_environ(),
        timeout=300,
    )


def test_uv_installs_through_the_verifying_proxy_and_fails_closed_when_tampered(
    server: LiveServer, chain: dict[str, BuiltDist], trusted_root: Path, tmp_path: Path
) -> None:
    with _proxy(server, trusted_root, tmp_path / "first") as index:
        result = _uv_install(index, tmp_path / "ok", "e2e-top")
        assert result.returncode == 0, describe(result)
    imported = run(
        [str(tmp_path / "ok" / "bin" / "python"), "-c", "import e2e_top, e2e_middle, e2e_bottom"],
        env=clean_environ(),
    )
    assert imported.returncode == 0, describe(imported)

    bottom = chain["bottom"]
    blob = server.blob_path(_storage_key(server, bottom.normalized, bottom.wheel.name))
    original = blob.read_bytes()
    with _proxy(server, trusted_root, tmp_path / "second") as index:
        try:
            blob.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # altered on disk
            result = _uv_install(index, tmp_path / "bad", "e2e-bottom")
        finally:
            blob.write_bytes(original)
    _refused(result, "LengthOrHashMismatchError")  # uv shows the proxy's reason phrase
    log = (tmp_path / "second" / "proxy.log").read_text()
    assert "refused /files/" in log and "LengthOrHashMismatchError" in log, log
    assert not list((tmp_path / "bad").glob("lib/python*/site-packages/e2e_bottom"))


# --- attacks on the proxy, with pip ---------------------------------------------------------


def test_the_server_signs_uploads_in_the_background(
    server: LiveServer, trusted_root: Path, tmp_path: Path
) -> None:
    """Nothing reads /tuf/ here: the worker's signer runs the round by itself, one
    BASTION_TUF_SIGN_DELAY (1 s) after the upload."""
    project = "e2e-tuf-background"
    server.twine_ok(make_wheel(tmp_path, name=project, version="1.0"))
    query = (
        "SELECT i.serial, s.serial FROM projects_index_state i "
        "JOIN signing_state s ON s.id = 1 WHERE i.id = 1"
    )
    deadline = time.monotonic() + 30
    while True:
        ((index, signed),) = _sql(server, query)
        if signed == index or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert signed == index, f"signed through serial {signed}, the index is at {index}"
    ((targets,),) = _sql(
        server, "SELECT count(*) FROM signing_target WHERE project = %s", [project]
    )
    assert targets == 3  # the wheel and both simple pages


def _signed(server: LiveServer) -> None:
    """Every upload signed, as a client's read of timestamp.json leaves it: no round comes
    later to replace the metadata a test tampers with."""
    assert server.get("/tuf/timestamp.json").status_code == 200


def test_the_proxy_refuses_a_rollback_of_the_timestamp_or_the_snapshot(
    server: LiveServer, chain: dict[str, BuiltDist], trusted_root: Path, tmp_path: Path
) -> None:
    _signed(server)
    current = _current_version(server, "timestamp")
    assert current >= 2, "the uploads of the chain published new timestamps"
    with _proxy(server, trusted_root, tmp_path) as index:
        seen = requests.get(index + "e2e-bottom/", timeout=30)  # the proxy trusts version N
        assert seen.status_code == 200, seen.text
        try:
            # The index (or a mirror, or an attacker in between) serves version N-1 again.
            _sql(
                server,
                "UPDATE signing_currentrole SET version = %s WHERE role = 'timestamp'",
                [current - 1],
            )
            served = server.get("/tuf/timestamp.json").json()
            assert served["signed"]["version"] == current - 1
            time.sleep(tuf_proxy.REFRESH_EVERY + 0.2)  # past the proxy's reuse of its view
            result = _pip_install(index, tmp_path / "rolled-back", "e2e-bottom")
            with_uv = _uv_install(index, tmp_path / "rolled-back-uv", "e2e-bottom")
        finally:
            _sql(
                server,
                "UPDATE signing_currentrole SET version = %s WHERE role = 'timestamp'",
                [current],
            )
    # Refused at the project page: pip shows the reason as a warning, uv as the error.
    _refused(result, "BadVersionNumberError")
    assert not (tmp_path / "rolled-back" / "e2e_bottom").exists()
    _refused(with_uv, "BadVersionNumberError")

    # An old snapshot served again behind the current timestamp: a fresh proxy refuses it.
    snapshot = _current_version(server, "snapshot")
    body = _metadata(server, "snapshot", snapshot)
    with _proxy(server, trusted_root, tmp_path / "snapshot") as index:
        try:
            _set_metadata(server, "snapshot", snapshot, _metadata(server, "snapshot", snapshot - 1))
            refused = requests.get(index + "e2e-bottom/", timeout=30)
        finally:
            _set_metadata(server, "snapshot", snapshot, body)
    assert refused.status_code == tuf_proxy.REFUSED, refused.text
    assert refused.reason.startswith("TUF verification failed: "), refused.reason
    assert "LengthOrHashMismatchError" in refused.reason or "Version" in refused.reason


def test_the_proxy_refuses_expired_metadata(
    server: LiveServer, chain: dict[str, BuiltDist], trusted_root: Path, tmp_path: Path
) -> None:
    """A freeze: the index keeps serving metadata that is no longer renewed. Seen from a clock
    two days on (the timestamp, snapshot and bins live one day), everything has expired.

    The proxy runs in this process (``proxy.make_server``, what ``bastion tuf proxy`` serves),
    so that time-machine can move its clock; the server and pip keep the real time."""
    where = tmp_path / "proxy-cache"
    httpd = tuf_proxy.make_server(
        root=trusted_root, index=server.base_url, host="127.0.0.1", port=0, cache_dir=where
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    index = f"http://127.0.0.1:{httpd.server_address[1]}/simple/"
    try:
        with time_machine.travel(datetime.now(UTC) + timedelta(days=2), tick=True):
            result = _pip_install(index, tmp_path / "frozen", "e2e-bottom")
        assert requests.get(index + "e2e-bottom/", timeout=30).status_code == 200  # today: fine
    finally:
        httpd.shutdown()
        httpd.server_close()
    _refused(result, "ExpiredMetadataError")
    assert not (tmp_path / "frozen" / "e2e_bottom").exists()


def test_the_proxy_refuses_a_bin_signed_by_another_key(
    server: LiveServer, chain: dict[str, BuiltDist], trusted_root: Path, tmp_path: Path
) -> None:
    bottom = chain["bottom"]
    key = _storage_key(server, bottom.normalized, bottom.wheel.name)
    _signed(server)
    targets = json.loads(_metadata(server, "targets", _current_version(server, "targets")))
    succinct = SuccinctRoles.from_dict(dict(targets["signed"]["delegations"]["succinct_roles"]))
    role = succinct.get_role_for_target(key)
    version = _current_version(server, role)
    original = _metadata(server, role, version)
    forged = Metadata.from_bytes(original)
    forged.signatures.clear()
    forged.sign(CryptoSigner.generate_ed25519())  # same content, a key the targets role lacks
    with _proxy(server, trusted_root, tmp_path) as index:
        try:
            _set_metadata(server, role, version, forged.to_bytes(JSONSerializer(compact=True)))
            result = _pip_install(index, tmp_path / "forged", "e2e-bottom")
        finally:
            _set_metadata(server, role, version, original)
    _refused(result, "UnsignedMetadataError")
    assert not (tmp_path / "forged" / "e2e_bottom").exists()


# --- a yank and a deletion on the live server -------------------------------------------------


def _signed_page(server: LiveServer, updater: Updater, project: str, page: str, where: Path):
    info = updater.get_targetinfo(f"simple/{project}/{page}")
    assert info is not None, f"simple/{project}/{page} is not signed"
    path = updater.download_target(info, filepath=str(where), target_base_url=server.url("/"))
    body = Path(path).read_bytes()
    accept = SIMPLE_JSON if page == "index.json" else "text/html"
    assert server.get(f"/simple/{project}/", headers={"Accept": accept}).content == body
    return info, body


def test_ngclient_sees_a_yank_and_a_deletion(
    server: LiveServer, trusted_root: Path, tmp_path: Path
) -> None:
    browser, username, password = enrolled_browser(server)  # signed in, recently reauthenticated
    token = server.cli_ok("token", "create", username, "--name", "e2e-tuf-yank")
    project = "e2e-tuf-yank"
    one = make_wheel(tmp_path, name=project, version="1.0")
    two = make_wheel(tmp_path, name=project, version="2.0")
    server.twine_ok(one, two, token=token)  # the uploader is the project's Owner
    keys = {path.name: _storage_key(server, project, path.name) for path in (one, two)}
    client = tmp_path / "client"  # one client, following every change (rollback-protected)

    before = _updater(server, trusted_root, client)
    before.refresh()
    page_before, _body = _signed_page(server, before, project, "index.json", tmp_path / "p0")

    server.cli_ok("release", "yank", project, "1.0", "--reason", "broken build")
    yanked = _updater(server, trusted_root, client)
    yanked.refresh()
    info, body = _signed_page(server, yanked, project, "index.json", tmp_path / "p1")
    assert info.hashes != page_before.hashes
    assert {f["filename"]: f["yanked"] for f in json.loads(body)["files"]} == {
        one.name: "broken build",
        two.name: False,
    }
    _info, html = _signed_page(server, yanked, project, "index.html", tmp_path / "p1.html")
    assert html.count(b'data-yanked="broken build"') == 1

    # An Owner deletes 2.0's file on the manage page.
    path = f"/manage/project/{project}/file/{two.name}/delete/"
    form = browser.get(path)
    if form.status_code == 302:  # the reauthentication of the enrolment has run out
        assert form.headers["Location"].startswith("/account/reauthenticate/")
        browser.post("/account/reauthenticate/", {"password": password})
        form = browser.get(path)
    assert form.status_code == 200, form.text[:500]
    done = browser.post(path, {"confirm": two.name}, page=form)
    assert done.status_code in (302, 303), done.text[:800]

    deleted = _updater(server, trusted_root, client)
    deleted.refresh()
    assert deleted.get_targetinfo(keys[two.name]) is None
    kept = deleted.get_targetinfo(keys[one.name])
    assert kept is not None
    assert Path(deleted.download_target(kept)).read_bytes() == one.read_bytes()
    _info, body = _signed_page(server, deleted, project, "index.json", tmp_path / "p2")
    assert [f["filename"] for f in json.loads(body)["files"]] == [one.name]
