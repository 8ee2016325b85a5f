"""Every hostile artifact of tests/fixtures/dists through the live upload endpoint.

Each must be refused with its exact problem code, and leave the index exactly as it was:
no project, release or file row, no blob, nothing in the spool; only the refusal's audit event.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from bastion.audit.models import Event
from tests.fixtures.dists import FORM_HOSTILE, HOSTILE
from tests.integration.conftest import basic, stored_blobs
from tests.integration.uploads.test_upload_endpoint import assert_unchanged, form_for, snapshot
from tests.unit.core.builders import make_wheel

pytestmark = pytest.mark.django_db


def _form(path: Path, extra: dict[str, list[str]] | None = None) -> dict[str, object]:
    name = path.name.split("-")[0] or "demo"
    rest = path.name[len(name) + 1 :]
    version = rest.split("-")[0].removesuffix(".tar.gz") or "1.0"
    is_wheel = path.name.endswith(".whl")
    data = path.read_bytes()
    form: dict[str, object] = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": name,
        "version": version,
        "filetype": "bdist_wheel" if is_wheel else "sdist",
        "pyversion": "py3" if is_wheel else "source",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        "content": path.open("rb"),
    }
    for key, values in (extra or {}).items():
        form[key] = values if len(values) > 1 else values[0]
    return form


def _refused_with(client, token: str, form: dict[str, object], code: str) -> None:
    before = snapshot()
    events = Event.objects.count()
    response = client.post(
        "/legacy/", data=form, HTTP_AUTHORIZATION=basic(token), HTTP_ACCEPT="application/json"
    )
    assert response.status_code in (400, 413), response.content
    body = json.loads(response.content)
    codes = [problem["code"] for problem in body["errors"]]
    assert code in codes, (code, codes, body["message"])
    assert body["code"] == f"{response.status_code} {response.reason_phrase}"
    assert_unchanged(before)
    refusal = Event.objects.order_by("-seq").first()
    assert Event.objects.count() == events + 1
    assert refusal.kind == "upload.rejected" and code in refusal.payload["problems"]


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_artifact_is_refused(client, alice, alice_token, tmp_path, case):
    code, build = HOSTILE[case]
    _refused_with(client, alice_token, _form(build(tmp_path)), code)


@pytest.mark.parametrize("case", sorted(FORM_HOSTILE))
def test_form_contradicting_the_file_is_refused(client, alice, alice_token, tmp_path, case):
    code, build, fields = FORM_HOSTILE[case]
    _refused_with(client, alice_token, _form(build(tmp_path), fields), code)


@pytest.mark.parametrize("name", ["requ3sts", "reque5ts", "Req_uests", "REQUE.STS", "rEqUEsts-"])
def test_look_alike_project_name_is_refused(client, alice, alice_token, tmp_path, name):
    name = name.rstrip("-")
    first = make_wheel(tmp_path, name="requests", version="1.0")
    ok = client.post("/legacy/", data=form_for(first), HTTP_AUTHORIZATION=basic(alice_token))
    assert ok.status_code == 200
    (tmp_path / "other").mkdir()
    wheel = make_wheel(tmp_path / "other", name=name, version="2.0")
    before, blobs = snapshot(), stored_blobs()
    response = client.post("/legacy/", data=form_for(wheel), HTTP_AUTHORIZATION=basic(alice_token))
    if name.lower() == "requests":
        assert response.status_code == 200  # the same project, not a look-alike
        return
    assert response.status_code == 400, response.content
    assert response["X-Bastion-Error"] == "dist.name.confusable"
    assert "too similar to the existing project 'requests'" in response.reason_phrase
    assert snapshot() == before and stored_blobs() == blobs


def test_a_merely_similar_name_is_fine(client, alice, alice_token, tmp_path):
    for name in ("requests", "request"):
        (tmp_path / name).mkdir()
        wheel = make_wheel(tmp_path / name, name=name, version="1.0")
        response = client.post(
            "/legacy/", data=form_for(wheel), HTTP_AUTHORIZATION=basic(alice_token)
        )
        assert response.status_code == 200, response.content


@pytest.mark.parametrize("name", ["asyncio", "python", "setup.py"])
def test_reserved_names_cannot_become_projects(client, alice, alice_token, tmp_path, name):
    wheel = make_wheel(tmp_path, name=name, version="1.0")
    before = snapshot()
    response = client.post("/legacy/", data=form_for(wheel), HTTP_AUTHORIZATION=basic(alice_token))
    assert response.status_code == 400
    assert response["X-Bastion-Error"] in {"dist.name.stdlib", "dist.name.prohibited"}
    assert_unchanged(before)
