"""Upload rejections through the live ``POST /legacy/``: status, message, and nothing stored.

Each case sends a hand-built multipart request with ``requests`` and then checks that the index
did not change: the project's simple page is still 404 (or byte-identical), the blob store holds
no new file and the spool directory is empty.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.e2e._support import (
    UV_PUBLISH_ACCEPT,
    BuiltDist,
    LiveServer,
    upload_form,
)

pytestmark = pytest.mark.e2e


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@dataclass
class Snapshot:
    pages: dict[str, bytes | None]
    blobs: set[str]


@pytest.fixture
def unchanged(server: LiveServer) -> Iterator[Any]:
    """Call with the project names to watch; asserts after the test that nothing changed."""
    watched: list[Snapshot] = []

    def page(project: str) -> bytes | None:
        response = server.get(f"/simple/{project}/", headers={"Accept": "text/html"})
        if response.status_code == 404:
            return None
        assert response.status_code == 200
        return response.content

    def watch(*projects: str) -> None:
        watched.append(Snapshot({p: page(p) for p in projects}, server.stored_blobs()))

    yield watch
    for snapshot in watched:
        for project, before in snapshot.pages.items():
            assert page(project) == before, f"the simple page of {project} changed"
        assert server.stored_blobs() == snapshot.blobs, "a blob was stored"
    assert server.spooled() == [], "a spooled upload was left behind"


def _post(
    server: LiveServer,
    *,
    authorization: str | None,
    data: dict[str, str] | None = None,
    files: dict[str, Any] | None = None,
    accept: str | None = None,
    body: bytes | None = None,
    content_type: str | None = None,
) -> requests.Response:
    headers: dict[str, str] = {}
    if authorization is not None:
        headers["Authorization"] = authorization
    if accept is not None:
        headers["Accept"] = accept
    if content_type is not None:
        headers["Content-Type"] = content_type
    return server.http.post(
        server.upload_url,
        data=body if body is not None else data,
        files=files,
        headers=headers,
        timeout=60,
        allow_redirects=False,
    )


def _check_error(
    server: LiveServer,
    status: int | tuple[int, ...],
    fragment: str,
    *,
    authorization: str | None,
    data: dict[str, str] | None = None,
    files: dict[str, Any] | None = None,
    body: bytes | None = None,
    content_type: str | None = None,
) -> requests.Response:
    """Send the request twice (plain and with a JSON Accept) and check both answers."""
    statuses = status if isinstance(status, tuple) else (status,)
    plain = _post(
        server,
        authorization=authorization,
        data=data,
        files=files,
        body=body,
        content_type=content_type,
    )
    assert plain.status_code in statuses, (plain.status_code, plain.reason, plain.text)
    # P73: the message is on the status line (twine shows it) and in the body.
    assert fragment.lower() in plain.reason.lower(), plain.reason
    assert fragment.lower() in plain.text.lower(), plain.text
    assert plain.reason not in ("Bad Request", "Forbidden", "Unauthorized")

    for accept in ("application/json", UV_PUBLISH_ACCEPT):
        answer = _post(
            server,
            authorization=authorization,
            data=data,
            files=files,
            body=body,
            accept=accept,
            content_type=content_type,
        )
        assert answer.status_code == plain.status_code
        assert answer.headers["Content-Type"].startswith("application/json")
        payload = answer.json()
        assert str(payload["code"]).startswith(str(plain.status_code))
        assert fragment.lower() in payload["message"].lower(), payload
    return plain


@pytest.fixture(scope="session")
def bob_token(server: LiveServer) -> str:
    server.cli_ok("user", "create", "bob", "--email", "bob@example.com")
    return server.cli_ok("token", "create", "bob", "--name", "bob-e2e")


@pytest.fixture(scope="session")
def other_project_token(server: LiveServer) -> str:
    return server.cli_ok(
        "token", "create", "alice", "--project", "other-project", "--name", "e2e-other-project"
    )


@pytest.fixture
def reject(sample_dists: dict[str, BuiltDist]) -> BuiltDist:
    return sample_dists["reject"]


def test_no_authentication(server: LiveServer, reject: BuiltDist, unchanged: Any) -> None:
    unchanged(reject.normalized)
    data, files = upload_form(reject)
    response = _check_error(
        server, (401, 403), "authentication", authorization=None, data=data, files=files
    )
    if response.status_code == 401:
        assert response.headers["WWW-Authenticate"].lower().startswith("basic")


def test_username_and_password_are_refused(
    server: LiveServer, reject: BuiltDist, unchanged: Any
) -> None:
    unchanged(reject.normalized)
    data, files = upload_form(reject)
    response = _check_error(
        server,
        403,
        "API token",
        authorization=_basic("alice", server.password),
        data=data,
        files=files,
    )
    assert "password" in response.reason.lower()


@pytest.mark.parametrize(
    "password",
    ["garbage", "bastion-AAAA", "pypi-AgEIcHlwaS5vcmcCJGQ0ZjRlY2Y0LWRlYmQtNDU0Zi1hNDQ0"],
    ids=["garbage", "bastion-prefix", "pypi-token"],
)
def test_garbage_token(
    server: LiveServer, reject: BuiltDist, unchanged: Any, password: str
) -> None:
    unchanged(reject.normalized)
    data, files = upload_form(reject)
    _post_and_expect_status(server, 403, _basic("__token__", password), data, files)


def test_tampered_token(server: LiveServer, reject: BuiltDist, unchanged: Any) -> None:
    unchanged(reject.normalized)
    data, files = upload_form(reject)
    # Take the real token and replace its trailing signature bytes.
    prefix, _, encoded = server.token.partition("-")
    raw = bytearray(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    raw[-8:] = bytes(b ^ 0xFF for b in raw[-8:])
    tampered = prefix + "-" + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    assert tampered != server.token
    _post_and_expect_status(server, 403, _basic("__token__", tampered), data, files)


def _post_and_expect_status(
    server: LiveServer, status: int, authorization: str, data: dict[str, str], files: Any
) -> None:
    response = _post(server, authorization=authorization, data=data, files=files)
    assert response.status_code == status, (response.status_code, response.reason, response.text)
    assert "token" in response.reason.lower(), response.reason
    answer = _post(
        server, authorization=authorization, data=data, files=files, accept="application/json"
    )
    assert answer.status_code == status
    payload = answer.json()
    assert payload["code"].startswith(str(status)) and payload["message"]


def test_token_scoped_to_another_project(
    server: LiveServer, reject: BuiltDist, unchanged: Any, other_project_token: str
) -> None:
    unchanged(reject.normalized, "other-project")
    data, files = upload_form(reject)
    _check_error(
        server,
        403,
        "not valid for project",
        authorization=_basic("__token__", other_project_token),
        data=data,
        files=files,
    )


def test_user_without_a_role_on_the_project(
    server: LiveServer,
    owned: BuiltDist,
    sample_dists: dict[str, BuiltDist],
    unchanged: Any,
    bob_token: str,
) -> None:
    unchanged(owned.normalized)
    attempt = sample_dists["owned2"]
    data, files = upload_form(attempt)
    _check_error(
        server,
        403,
        "isn't allowed to upload",
        authorization=_basic("__token__", bob_token),
        data=data,
        files=files,
    )


def test_wrong_sha256_digest(server: LiveServer, reject: BuiltDist, unchanged: Any) -> None:
    unchanged(reject.normalized)
    data, files = upload_form(
        reject, overrides={"sha256_digest": hashlib.sha256(b"something else").hexdigest()}
    )
    _check_error(
        server,
        400,
        "digest",
        authorization=_basic("__token__", server.token),
        data=data,
        files=files,
    )


def test_wrong_sha256_digest_on_an_sdist(
    server: LiveServer, reject: BuiltDist, unchanged: Any
) -> None:
    unchanged(reject.normalized)
    data, files = upload_form(
        reject, which="sdist", overrides={"sha256_digest": "0" * 64, "blake2_256_digest": None}
    )
    _check_error(
        server,
        400,
        "does not match",
        authorization=_basic("__token__", server.token),
        data=data,
        files=files,
    )


def test_missing_name_field(server: LiveServer, reject: BuiltDist, unchanged: Any) -> None:
    unchanged(reject.normalized)
    data, files = upload_form(reject, overrides={"name": None})
    response = _check_error(
        server, 400, "name", authorization=_basic("__token__", server.token), data=data, files=files
    )
    assert "required" in response.reason.lower()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (
            b'--xyz\r\nContent-Disposition: form-data; name="content"; filename="e2e_reject-1.0-'
            b'py3-none-any.whl"\r\nContent-Type: application/octet-stream\r\n\r\nPK\x03\x04trunc',
            "multipart/form-data; boundary=xyz",
        ),
        (b"this is not multipart at all", "multipart/form-data"),
        (b":action=file_upload&name=e2e-reject", "application/x-www-form-urlencoded"),
    ],
    ids=["truncated-part", "no-boundary", "not-multipart"],
)
def test_malformed_body(
    server: LiveServer,
    reject: BuiltDist,
    unchanged: Any,
    body: bytes,
    content_type: str,
) -> None:
    unchanged(reject.normalized)
    response = _post(
        server,
        authorization=_basic("__token__", server.token),
        body=body,
        content_type=content_type,
    )
    assert response.status_code == 400, (response.status_code, response.reason, response.text)
    assert "multipart" in response.reason.lower(), response.reason
    answer = _post(
        server,
        authorization=_basic("__token__", server.token),
        body=body,
        content_type=content_type,
        accept="application/json",
    )
    assert answer.status_code == 400
    payload = answer.json()
    assert payload["code"].startswith("400") and "multipart" in payload["message"].lower()


def test_a_valid_upload_after_the_rejections_works(
    server: LiveServer, sample_dists: dict[str, BuiltDist]
) -> None:
    """The hand-built form itself is right: the same request with a good token is accepted."""
    dist = sample_dists["handmade"]
    data, files = upload_form(dist)
    # Upload under a fresh token scoped to this project only.
    token = server.cli_ok(
        "token", "create", "alice", "--project", dist.name, "--name", "e2e-reject-ok"
    )
    response = _post(server, authorization=_basic("__token__", token), data=data, files=files)
    assert response.status_code == 200, (response.status_code, response.reason, response.text)
    assert set(server.simple_files(dist.name)) == {dist.wheel.name}


@pytest.mark.parametrize("uploader", ["alice", "bob"])
def test_identical_file_claimed_for_another_project(
    server: LiveServer, owned: BuiltDist, unchanged: Any, bob_token: str, uploader: str
) -> None:
    """An identical re-upload is a no-op only for the project the file belongs to.

    Re-sending alice's ``e2e-owned`` wheel byte for byte while the form names another project
    must not answer 200 (as if that project had accepted it), whoever sends it.
    """
    claimed = f"e2e-claimed-by-{uploader}"
    unchanged(owned.normalized, claimed)
    token = server.token if uploader == "alice" else bob_token
    data, files = upload_form(owned, overrides={"name": claimed})
    response = _post(server, authorization=_basic("__token__", token), data=data, files=files)
    assert response.status_code == 400, (response.status_code, response.reason, response.text)
    assert "already exists" in response.reason, response.reason
