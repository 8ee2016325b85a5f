"""Yanks, un-yanks and deletions through ``bastion.projects.services`` (the hook the web pages
and the CLI call) are reflected in the signed metadata, as python-tuf's ngclient sees it.

The deletions need an Owner with a recent reauthentication only in the views; the services
take the actor, here the operator (``Actor.operator()``, what the command line uses).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from bastion.actors import Actor
from bastion.projects import services as projects
from bastion.projects.models import File, Project, Release
from bastion.signing import services
from bastion.signing.models import SignedPage, Target
from tests.integration.signing.conftest import ORIGIN, make_updater
from tests.integration.uploads.test_upload_endpoint import upload
from tests.unit.core.builders import make_sdist, make_wheel

pytestmark = pytest.mark.django_db

OPERATOR = Actor.operator()


@pytest.fixture
def published(client, repository, alice_token, tmp_path):
    """demo 1.0 (wheel + sdist) and demo 2.0 (wheel), and other 1.0 (wheel)."""
    for path in (
        make_wheel(tmp_path, name="demo", version="1.0"),
        make_sdist(tmp_path, name="demo", version="1.0"),
        make_wheel(tmp_path, name="demo", version="2.0"),
        make_wheel(tmp_path, name="other", version="1.0"),
    ):
        response = upload(client, path, alice_token)
        assert response.status_code == 200, response.content
    return {f.filename: f for f in File.objects.select_related("release")}


def _signed_page(client, updater, tmp_path, project: str, page: str) -> bytes:
    info = updater.get_targetinfo(f"simple/{project}/{page}")
    assert info is not None, f"simple/{project}/{page} is not signed"
    where = tmp_path / f"{project}-{page}-{info.hashes['sha256'][:8]}"
    path = updater.download_target(info, filepath=str(where), target_base_url=f"{ORIGIN}/")
    body = open(path, "rb").read()
    accept = "application/vnd.pypi.simple.v1+json" if page.endswith("json") else "text/html"
    assert client.get(f"/simple/{project}/", HTTP_ACCEPT=accept).content == body
    return body


def _fresh(client, tmp_path, name: str):
    updater = make_updater(client, tmp_path / name)
    updater.refresh()
    return updater


def test_a_yank_and_an_unyank_re_sign_the_simple_pages(client, published, tmp_path):
    release = Release.objects.get(project__normalized_name="demo", version="1.0")
    before = _fresh(client, tmp_path, "before")
    html_before = _signed_page(client, before, tmp_path, "demo", "index.html")

    assert projects.yank_release(actor=OPERATOR, release=release, reason="broken build")
    yanked = _fresh(client, tmp_path, "yanked")
    page = json.loads(_signed_page(client, yanked, tmp_path, "demo", "index.json"))
    by_name = {entry["filename"]: entry["yanked"] for entry in page["files"]}
    assert by_name == {
        "demo-1.0-py3-none-any.whl": "broken build",
        "demo-1.0.tar.gz": "broken build",
        "demo-2.0-py3-none-any.whl": False,
    }
    html = _signed_page(client, yanked, tmp_path, "demo", "index.html")
    assert html.count(b'data-yanked="broken build"') == 2

    assert projects.unyank_release(actor=OPERATOR, release=release)
    unyanked = _fresh(client, tmp_path, "unyanked")
    # The HTML page carries no serial: it is byte for byte the page signed before the yank.
    assert _signed_page(client, unyanked, tmp_path, "demo", "index.html") == html_before
    page = json.loads(_signed_page(client, unyanked, tmp_path, "demo", "index.json"))
    assert not any(entry["yanked"] for entry in page["files"])


def test_a_page_signed_again_with_earlier_bytes_is_current_and_survives_collection(
    client, published, tmp_path
):
    """Regression: a page whose bytes return to an earlier version's (yank, then un-yank) is the
    current page again: served at its plain and hashed URLs, and not collected as superseded."""
    release = Release.objects.get(project__normalized_name="demo", version="1.0")
    projects.yank_release(actor=OPERATOR, release=release, reason="oops")
    projects.unyank_release(actor=OPERATOR, release=release)
    current = SignedPage.objects.filter(path="simple/demo/index.html", superseded=None)
    assert current.count() == 1
    served = client.get("/simple/demo/", HTTP_ACCEPT="text/html").content
    assert bytes(current.get().body) == served
    assert client.get("/simple/demo/index.html").content == served
    services.collect_garbage(now=timezone.now() + timedelta(days=1))
    updater = _fresh(client, tmp_path, "after-gc")
    assert _signed_page(client, updater, tmp_path, "demo", "index.html") == served


def test_deleting_a_file_a_release_and_a_project_removes_their_targets(client, published, tmp_path):
    keys = {name: file.storage_key for name, file in published.items()}
    first = _fresh(client, tmp_path, "first")
    for key in keys.values():
        assert first.get_targetinfo(key) is not None

    projects.delete_file(actor=OPERATOR, file=published["demo-1.0.tar.gz"])
    updater = _fresh(client, tmp_path, "after-file")
    assert updater.get_targetinfo(keys["demo-1.0.tar.gz"]) is None
    for name in ("demo-1.0-py3-none-any.whl", "demo-2.0-py3-none-any.whl"):
        info = updater.get_targetinfo(keys[name])
        assert info is not None
        updater.download_target(info)  # still verifies
    page = json.loads(_signed_page(client, updater, tmp_path, "demo", "index.json"))
    assert [e["filename"] for e in page["files"]] == [
        "demo-1.0-py3-none-any.whl",
        "demo-2.0-py3-none-any.whl",
    ]

    projects.delete_release(
        actor=OPERATOR, release=Release.objects.get(project__normalized_name="demo", version="2.0")
    )
    updater = _fresh(client, tmp_path, "after-release")
    assert updater.get_targetinfo(keys["demo-2.0-py3-none-any.whl"]) is None
    assert updater.get_targetinfo(keys["demo-1.0-py3-none-any.whl"]) is not None

    projects.delete_project(actor=OPERATOR, project=Project.objects.get(normalized_name="demo"))
    updater = _fresh(client, tmp_path, "after-project")
    for name, key in keys.items():
        assert (updater.get_targetinfo(key) is None) == name.startswith("demo-"), name
    assert updater.get_targetinfo("simple/demo/index.html") is None
    assert updater.get_targetinfo("simple/demo/index.json") is None
    assert not Target.objects.filter(project="demo").exists()
    other = updater.get_targetinfo(keys["other-1.0-py3-none-any.whl"])
    assert other is not None
    updater.download_target(other)
    assert _signed_page(client, updater, tmp_path, "other", "index.json")
    # The client that trusted the first versions follows along (no rollback, no fork).
    again = _fresh(client, tmp_path, "first")
    assert again.get_targetinfo(keys["demo-1.0-py3-none-any.whl"]) is None
    assert first._trusted_set.snapshot.version < again._trusted_set.snapshot.version
