"""Every answer of ``POST /legacy/``: status, reason phrase, stable code, and nothing left behind.

The Django test client drives the real view, database (SQLite) and local blob store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.utils import timezone

from bastion.projects.models import File, FilenameRecord, Project, ProjectStatus, Release, Role
from bastion.tokens.models import ApiToken
from tests.integration.conftest import basic, spooled_files, stored_blobs
from tests.unit.core.builders import make_sdist, make_wheel

pytestmark = pytest.mark.django_db


def form_for(path: Path, **overrides: object) -> dict[str, object]:
    data = path.read_bytes()
    is_wheel = path.name.endswith(".whl")
    name, version = path.name.split("-")[:2]
    if not is_wheel:
        version = version.removesuffix(".tar.gz")
    form: dict[str, object] = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": name.replace("_", "-"),
        "version": version,
        "filetype": "bdist_wheel" if is_wheel else "sdist",
        "pyversion": "py3" if is_wheel else "source",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest(),
        "content": path.open("rb"),
    }
    for key, value in overrides.items():
        if value is None:
            form.pop(key, None)
        else:
            form[key] = value
    return form


def upload(
    client, path: Path | None, token: str | None, *, auth: str | None = None, accept=None, **fields
):
    form = form_for(path, **fields) if path is not None else dict(fields)
    headers = {}
    if auth is not None:
        headers["HTTP_AUTHORIZATION"] = auth
    elif token is not None:
        headers["HTTP_AUTHORIZATION"] = basic(token)
    if accept:
        headers["HTTP_ACCEPT"] = accept
    return client.post("/legacy/", data=form, **headers)


def assert_unchanged(before: dict[str, int]) -> None:
    assert snapshot() == before
    assert stored_blobs() == []
    assert spooled_files() == []


def snapshot() -> dict[str, int]:
    return {
        "projects": Project.objects.count(),
        "releases": Release.objects.count(),
        "files": File.objects.count(),
        "filenames": FilenameRecord.objects.count(),
    }


@pytest.fixture
def wheel(tmp_path):
    return make_wheel(tmp_path, name="demo", version="1.0")


@pytest.fixture
def sdist(tmp_path):
    return make_sdist(tmp_path, name="demo", version="1.0")


def test_wheel_upload_creates_project_release_file_and_owner_role(
    client, alice, alice_token, wheel
):
    response = upload(client, wheel, alice_token)
    assert response.status_code == 200, response.content
    project = Project.objects.get()
    assert (project.name, project.normalized_name) == ("demo", "demo")
    assert Role.objects.get(project=project).role_name == "Owner"
    file = File.objects.get()
    assert file.filename == wheel.name
    assert file.sha256 == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert file.metadata_sha256
    assert len(stored_blobs()) == 2  # the wheel and its .metadata
    assert spooled_files() == []
    assert ApiToken.objects.get().last_used is not None


def test_the_log_line_is_written_once_the_answer_is_closed(
    client, alice, alice_token, wheel, caplog
):
    # The WSGI server closes a response after sending it: the line comes after the answer.
    from django.test import RequestFactory

    from bastion.uploads.views import legacy_upload

    form = form_for(wheel)
    request = RequestFactory().post("/legacy/", data=form, HTTP_AUTHORIZATION=basic(alice_token))
    with caplog.at_level("INFO", logger="bastion.uploads.views"):
        response = legacy_upload(request)
        assert response.status_code == 200
        assert File.objects.count() == 1
        assert not [r for r in caplog.records if r.getMessage().startswith("upload ")]
        response.close()
        response.close()  # (written once)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("upload ")]
    assert lines == [f"upload {wheel.name} by alice (token {ApiToken.objects.get().pk}): stored"]


def test_the_log_line_survives_the_middleware(client, alice, alice_token, wheel, caplog):
    # Through every middleware (none may swap the response for another, losing the line).
    with caplog.at_level("INFO", logger="bastion.uploads.views"):
        assert upload(client, wheel, alice_token).status_code == 200
        assert upload(client, wheel, alice_token).status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("upload ")]
    assert [line.rsplit(": ", 1)[1] for line in lines] == [
        "stored",
        "identical file already present",
    ]


def test_identical_reupload_is_a_no_op_and_different_content_is_refused(
    client, alice, alice_token, wheel, tmp_path
):
    assert upload(client, wheel, alice_token).status_code == 200
    again = upload(client, wheel, alice_token)
    assert again.status_code == 200
    assert File.objects.count() == 1
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    altered = make_wheel(other_dir, name="demo", version="1.0", extra_members={"demo/x.py": b"1"})
    before = snapshot()
    blobs = stored_blobs()
    response = upload(client, altered, alice_token)
    assert response.status_code == 400
    assert response.reason_phrase.startswith("File already exists")
    assert snapshot() == before
    assert stored_blobs() == blobs


def test_one_and_the_same_release_for_equal_versions(client, alice, alice_token, tmp_path):
    assert upload(client, make_wheel(tmp_path, version="1.0"), alice_token).status_code == 200
    response = upload(client, make_sdist(tmp_path, version="1.0.0"), alice_token)
    assert response.status_code == 200, response.content
    assert Release.objects.count() == 1
    assert File.objects.count() == 2


def test_second_sdist_in_a_release_is_refused(client, alice, alice_token, tmp_path):
    assert upload(client, make_sdist(tmp_path, version="1.0"), alice_token).status_code == 200
    before, blobs = snapshot(), stored_blobs()
    response = upload(client, make_sdist(tmp_path, version="1.0.0"), alice_token)
    assert response.status_code == 400
    assert response.reason_phrase == "Only one sdist may be uploaded per release."
    assert snapshot() == before and stored_blobs() == blobs


def test_bearer_token_is_accepted(client, alice, alice_token, wheel):
    response = upload(client, wheel, None, auth=f"Bearer {alice_token}")
    assert response.status_code == 200


def test_maintainer_of_existing_project_may_upload(
    client, alice, bob, alice_token, make_token, tmp_path
):
    assert upload(client, make_wheel(tmp_path, version="1.0"), alice_token).status_code == 200
    Role.objects.create(user=bob, project=Project.objects.get(), role_name="Maintainer")
    response = upload(client, make_wheel(tmp_path, version="2.0"), make_token(bob))
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("auth", "status", "code", "reason_start"),
    [
        (None, 401, "auth.missing", "Invalid or non-existent authentication information"),
        ("Basic " + "YWxpY2U6c2VjcmV0", 403, "auth.password-refused", "Username/Password"),
        ("Basic !!!notbase64", 403, "auth.invalid", "Invalid or non-existent"),
        ("Digest abc", 403, "auth.invalid", "Invalid or non-existent"),
        (basic("bastion-garbage"), 403, "token.malformed", ""),
        (basic("pypi-AgEIcHlwaS5vcmc"), 403, "token.malformed", ""),
        (basic(""), 403, "auth.invalid", "Invalid or non-existent"),
    ],
)
def test_authentication_failures(client, alice, wheel, auth, status, code, reason_start):
    before = snapshot()
    response = upload(client, wheel, None, auth=auth)
    assert response.status_code == status
    assert response["X-Bastion-Error"] == code
    assert response.reason_phrase.startswith(reason_start)
    assert_unchanged(before)


def test_revoked_token_is_refused(client, alice, alice_token, wheel):
    ApiToken.objects.all().delete()
    before = snapshot()
    response = upload(client, wheel, alice_token)
    assert response.status_code == 403
    assert "revoked" in response.reason_phrase
    assert_unchanged(before)


def test_expired_token_is_refused(client, alice, make_token, wheel):
    token = make_token(
        alice, expires_in=timedelta(hours=1), now=timezone.now() - timedelta(hours=2)
    )
    before = snapshot()
    response = upload(client, wheel, token)
    assert response.status_code == 403
    assert "expired" in response.reason_phrase
    assert_unchanged(before)


def test_tampered_token_is_refused(client, alice, alice_token, wheel):
    tampered = alice_token[:-6] + ("AAAAAA" if not alice_token.endswith("AAAAAA") else "BBBBBB")
    before = snapshot()
    response = upload(client, wheel, tampered)
    assert response.status_code == 403
    assert_unchanged(before)


def test_token_for_another_project_is_refused(client, alice, make_token, wheel):
    token = make_token(alice, projects=["other-project"])
    before = snapshot()
    response = upload(client, wheel, token)
    assert response.status_code == 403
    assert "project-scoped token is not valid for project: 'demo'" in response.reason_phrase
    assert_unchanged(before)


def test_project_scoped_token_may_create_its_project(client, alice, make_token, wheel):
    response = upload(client, wheel, make_token(alice, projects=["Demo"]))
    assert response.status_code == 200


def test_user_without_a_role_is_refused(client, alice, bob, alice_token, make_token, tmp_path):
    assert upload(client, make_wheel(tmp_path, version="1.0"), alice_token).status_code == 200
    before, blobs = snapshot(), stored_blobs()
    response = upload(client, make_wheel(tmp_path, version="2.0"), make_token(bob))
    assert response.status_code == 403
    assert response.reason_phrase == "The user 'bob' isn't allowed to upload to project 'demo'."
    assert snapshot() == before and stored_blobs() == blobs


def test_archived_project_refuses_uploads(client, alice, alice_token, tmp_path):
    assert upload(client, make_wheel(tmp_path, version="1.0"), alice_token).status_code == 200
    Project.objects.update(status=ProjectStatus.ARCHIVED)
    before, blobs = snapshot(), stored_blobs()
    response = upload(client, make_wheel(tmp_path, version="2.0"), alice_token)
    assert response.status_code == 403
    assert "archived" in response.reason_phrase
    assert snapshot() == before and stored_blobs() == blobs


@pytest.mark.parametrize(
    ("fields", "status", "code", "reason"),
    [
        (
            {"sha256_digest": "0" * 64},
            400,
            "upload.digest-mismatch",
            "The digest supplied does not match a digest calculated from the uploaded file.",
        ),
        ({"blake2_256_digest": "F" * 64}, 400, "upload.digest-mismatch", None),
        ({"md5_digest": "0" * 32}, 400, "upload.digest-mismatch", None),
        (
            {"sha256_digest": None, "blake2_256_digest": None},
            400,
            "upload.digest-missing",
            "Include at least one message digest.",
        ),
        (
            {"sha256_digest": "xyz"},
            400,
            "upload.digest-invalid",
            "sha256_digest: Use a valid, hex-encoded digest.",
        ),
        ({"name": None}, 400, "upload.field-missing", "name: This field is required."),
        ({"version": None}, 400, "upload.field-missing", "version: This field is required."),
        ({"filetype": None}, 400, "upload.field-missing", "filetype: This field is required."),
        ({"filetype": "bdist_egg"}, 400, "upload.filetype", "Use a known file type."),
        ({"pyversion": None}, 400, "upload.field-missing", None),
        ({"content": None}, 400, "upload.no-file", "Upload payload does not have a file."),
        ({"protocol_version": "2"}, 400, "upload.protocol-version", "Unknown protocol version."),
        ({":action": "submit"}, 410, "upload.action-gone", None),
        ({":action": "doc_upload"}, 410, "upload.action-gone", None),
        ({":action": None}, 400, "upload.unknown-action", None),
        ({"attestations": "[{}]"}, 400, "upload.attestations-unsupported", None),
        ({"name": "other"}, 400, "dist.form.name-mismatch", None),
        ({"version": "2.0"}, 400, "dist.form.version-mismatch", None),
        ({"filetype": "sdist", "pyversion": None}, 400, "dist.form.filetype-mismatch", None),
        ({"name": "-demo"}, 400, "project.name.invalid", None),
    ],
)
def test_form_rejections(client, alice, alice_token, wheel, fields, status, code, reason):
    before = snapshot()
    response = upload(client, wheel, alice_token, **fields)
    assert response.status_code == status, response.content
    assert response["X-Bastion-Error"] == code
    if reason is not None:
        assert response.reason_phrase == reason
    assert_unchanged(before)


def test_sdist_with_a_python_version_is_refused(client, alice, alice_token, sdist):
    before = snapshot()
    response = upload(client, sdist, alice_token, pyversion="py3")
    assert response.status_code == 400
    assert response.reason_phrase == "Use 'source' as Python version for an sdist."
    assert_unchanged(before)


def test_empty_and_unknown_values_count_as_absent(client, alice, alice_token, wheel):
    response = upload(client, wheel, alice_token, requires_python="", summary="UNKNOWN")
    assert response.status_code == 200


def test_invalid_archive_is_refused_with_every_problem_listed(client, alice, alice_token, tmp_path):
    bogus = tmp_path / "demo-1.0-py3-none-any.whl"
    bogus.write_bytes(b"this is not a zip file at all")
    before = snapshot()
    response = upload(client, bogus, alice_token, accept="application/json")
    assert response.status_code == 400
    body = json.loads(response.content)
    assert body["code"].startswith("400 ")
    assert body["message"]
    assert body["errors"][0]["code"].startswith("dist.archive.")
    assert_unchanged(before)


def test_local_version_is_refused(client, alice, alice_token, tmp_path):
    wheel = make_wheel(tmp_path, version="1.0+local")
    before = snapshot()
    response = upload(client, wheel, alice_token)
    assert response.status_code == 400
    assert response["X-Bastion-Error"] == "dist.version.local"
    assert_unchanged(before)


def test_metadata_name_must_match_the_filename(client, alice, alice_token, tmp_path):
    wheel = make_wheel(tmp_path, metadata_overrides={"Name": "other"})
    before = snapshot()
    response = upload(client, wheel, alice_token)
    assert response.status_code == 400
    assert "dist.metadata.name-mismatch" in response.content.decode()
    assert_unchanged(before)


def test_json_error_body_for_uv(client, alice, wheel):
    response = upload(
        client,
        wheel,
        "bastion-nonsense",
        accept="application/json;q=0.9, text/plain;q=0.8, text/html;q=0.7",
    )
    assert response.status_code == 403
    body = json.loads(response.content)
    assert set(body) >= {"code", "message"}
    assert body["code"] == f"403 {response.reason_phrase}"


def test_file_too_large_is_413(client, alice, alice_token, wheel):
    small = dataclasses.replace(settings.BASTION, max_file_size=100)
    before = snapshot()
    with override_settings(BASTION=small):
        response = upload(client, wheel, alice_token)
    assert response.status_code == 413
    assert response.reason_phrase.startswith("File too large")
    assert_unchanged(before)


def test_project_size_limit(client, alice, alice_token, tmp_path):
    assert upload(client, make_wheel(tmp_path, version="1.0"), alice_token).status_code == 200
    used = Project.objects.get().total_size
    limited = dataclasses.replace(settings.BASTION, max_project_size=used + 10)
    before, blobs = snapshot(), stored_blobs()
    with override_settings(BASTION=limited):
        response = upload(client, make_wheel(tmp_path, version="2.0"), alice_token)
    assert response.status_code == 400
    assert response.reason_phrase.startswith("Project size too large")
    assert snapshot() == before and stored_blobs() == blobs


def test_non_file_field_sent_as_a_file(client, alice, alice_token, wheel, tmp_path):
    extra = tmp_path / "summary.txt"
    extra.write_text("hello")
    before = snapshot()
    response = upload(client, wheel, alice_token, summary=extra.open("rb"))
    assert response.status_code == 400
    assert response.reason_phrase == "summary: Should not be a tuple."
    assert_unchanged(before)


def _raw_post(client, body: bytes, token: str, content_type: str):
    return client.generic(
        "POST", "/legacy/", body, content_type=content_type, HTTP_AUTHORIZATION=basic(token)
    )


def _with_parts(form: dict[str, object], *parts: bytes) -> bytes:
    """The multipart body of ``form`` with ``parts`` (raw multipart parts) added before its end."""
    body = encode_multipart(BOUNDARY, form)
    return (
        body.rsplit(f"--{BOUNDARY}--".encode(), 1)[0]
        + b"".join(parts)
        + (f"--{BOUNDARY}--\r\n".encode())
    )


def _field(name: str, value: bytes) -> bytes:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
    return head.encode() + value + b"\r\n"


def _file_part(name: str, filename: str, data: bytes) -> bytes:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    )
    return head.encode() + data + b"\r\n"


def test_filename_with_a_path_is_refused(client, alice, alice_token, wheel):
    form = form_for(wheel)
    form.pop("content")
    raw = _with_parts(form, _file_part("content", f"../{wheel.name}", wheel.read_bytes()))
    before = snapshot()
    response = _raw_post(client, raw, alice_token, MULTIPART_CONTENT)
    assert response.status_code == 400
    assert response["X-Bastion-Error"] == "upload.filename-invalid"
    assert_unchanged(before)


def test_truncated_multipart_body_is_refused(client, alice, alice_token, wheel):
    form = form_for(wheel)
    raw = encode_multipart(BOUNDARY, form)
    truncated = raw[: len(raw) // 2 + 200]
    before = snapshot()
    response = _raw_post(client, truncated, alice_token, MULTIPART_CONTENT)
    assert response.status_code == 400
    assert response["X-Bastion-Error"] in {
        "upload.malformed-body",
        "upload.field-missing",
        "upload.no-file",
    }
    assert_unchanged(before)


def test_a_second_file_part_named_content_is_refused(client, alice, alice_token, wheel):
    before = snapshot()
    raw = _with_parts(form_for(wheel), _file_part("content", wheel.name, wheel.read_bytes()))
    response = _raw_post(client, raw, alice_token, MULTIPART_CONTENT)
    assert response.status_code == 400
    assert response["X-Bastion-Error"] == "upload.multiple-files"
    assert_unchanged(before)
    assert spooled_files() == []


@override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=40)
def test_too_many_form_fields_are_refused(client, alice, alice_token, wheel):
    before = snapshot()
    raw = _with_parts(form_for(wheel), *(_field("classifiers", b"x") for _ in range(40)))
    response = _raw_post(client, raw, alice_token, MULTIPART_CONTENT)
    assert response.status_code == 400
    assert response["X-Bastion-Error"] == "upload.too-many-fields"
    assert_unchanged(before)
    assert spooled_files() == []


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=64 * 1024)
def test_form_fields_over_the_memory_limit_are_refused(client, alice, alice_token, wheel):
    before = snapshot()
    raw = _with_parts(form_for(wheel), _field("description", b"d" * (64 * 1024)))
    response = _raw_post(client, raw, alice_token, MULTIPART_CONTENT)
    assert response.status_code == 413
    assert response["X-Bastion-Error"] == "upload.fields-too-large"
    assert_unchanged(before)
    assert spooled_files() == []


def test_a_content_part_without_a_file_name_is_no_file(client, alice, alice_token, wheel):
    form = form_for(wheel)
    form.pop("content")
    raw = _with_parts(form, _file_part("content", "", wheel.read_bytes()))
    before = snapshot()
    response = _raw_post(client, raw, alice_token, MULTIPART_CONTENT)
    assert response.status_code == 400
    assert response["X-Bastion-Error"] == "upload.no-file"
    assert_unchanged(before)


def test_field_values_keep_their_characters(client, alice, alice_token, tmp_path):
    # UTF-8 in a field (the summary twine sends from the metadata) arrives as text, unchanged.
    summary = "Grüße, 日本語"
    wheel = make_wheel(
        tmp_path, name="utf-demo", version="1.0", metadata_overrides={"Summary": summary}
    )
    form = form_for(wheel, summary=summary)
    response = client.post("/legacy/", data=form, HTTP_AUTHORIZATION=basic(alice_token))
    assert response.status_code == 200, response.content


def test_garbage_multipart_body_is_refused(client, alice, alice_token):
    before = snapshot()
    response = _raw_post(client, b"\x00\x01garbage", alice_token, "multipart/form-data; boundary=")
    assert response.status_code == 400
    assert response["X-Bastion-Error"] == "upload.malformed-body"
    assert_unchanged(before)


def test_non_multipart_body_is_refused(client, alice, alice_token):
    before = snapshot()
    response = _raw_post(client, b'{"name": "demo"}', alice_token, "application/json")
    assert response.status_code == 400
    assert response["X-Bastion-Error"] == "upload.not-multipart"
    assert_unchanged(before)


def test_get_on_the_upload_url_is_405(client):
    response = client.get("/legacy/")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
