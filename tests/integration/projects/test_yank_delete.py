"""Yank and un-yank (PEP 592), deletions after reauthentication, reserved names, PEP 792 status.

Every change must show in the simple API and the JSON API at once (the cached renderings are
keyed on the project's serial), and record its audit event.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from bastion.actors import Actor
from bastion.audit.models import Event
from bastion.projects import services
from bastion.projects.errors import NotAllowed
from bastion.projects.models import DeletedProject, File, FilenameRecord, Project, Release, Role
from tests.integration.conftest import stored_blobs
from tests.integration.projects.test_manage import (
    make_maintainer,
    reauthenticate,
    signed_in,
)
from tests.integration.uploads.test_upload_endpoint import upload
from tests.unit.core.builders import make_sdist, make_wheel

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("without_2fa_requirement")]
JSON_TYPE = "application/vnd.pypi.simple.v1+json"


def simple_json(client: Client, name: str = "demo") -> dict:
    response = client.get(f"/simple/{name}/", HTTP_ACCEPT=JSON_TYPE)
    assert response.status_code == 200
    return json.loads(response.content)


def simple_html(client: Client, name: str = "demo") -> str:
    response = client.get(f"/simple/{name}/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def demo2(demo, olga, make_token, tmp_path, client) -> Project:
    """demo with 1.0 (wheel) and 2.0 (wheel and sdist)."""
    token = make_token(olga)
    for path in (
        make_wheel(tmp_path, name="demo", version="2.0"),
        make_sdist(tmp_path, name="demo", version="2.0"),
    ):
        assert upload(client, path, token).status_code == 200
    return demo


# --- yanking ---------------------------------------------------------------------------------


def test_a_maintainer_yanks_and_unyanks_visible_at_once(client, demo2, olga, bob):
    make_maintainer(demo2, olga, bob)
    # render and cache the pages first: the change must not wait for any cache
    assert not any(f["yanked"] for f in simple_json(client)["files"])
    assert "data-yanked" not in simple_html(client)
    assert json.loads(client.get("/pypi/demo/json").content)["info"]["version"] == "2.0"

    manager = signed_in(bob)
    response = manager.post(
        "/manage/project/demo/release/2.0/yank/", {"reason": "broken on <Windows> & co"}
    )
    assert response.status_code == 303, response.content[:500]

    files = {f["filename"]: f["yanked"] for f in simple_json(client)["files"]}
    assert files == {
        "demo-1.0-py3-none-any.whl": False,
        "demo-2.0-py3-none-any.whl": "broken on <Windows> & co",
        "demo-2.0.tar.gz": "broken on <Windows> & co",
    }
    html = simple_html(client)
    assert html.count('data-yanked="broken on &lt;Windows&gt; &amp; co"') == 2
    project_json = json.loads(client.get("/pypi/demo/json").content)
    assert project_json["info"]["version"] == "1.0"  # latest non-yanked (P81)
    release_json = json.loads(client.get("/pypi/demo/2.0/json").content)
    assert release_json["info"]["yanked"] is True
    assert release_json["info"]["yanked_reason"] == "broken on <Windows> & co"
    event = Event.objects.get(kind="release.yanked")
    assert (event.actor_username, event.payload["version"]) == ("bob", "2.0")

    assert manager.post("/manage/project/demo/release/2.0/unyank/").status_code == 303
    assert not any(f["yanked"] for f in simple_json(client)["files"])
    assert "data-yanked" not in simple_html(client)
    assert Event.objects.filter(kind="release.unyanked").count() == 1
    assert not Release.objects.get(version="2.0").yanked


def test_yanking_again_is_idempotent_and_a_new_reason_replaces_the_old(demo, olga):
    release = demo.releases.get()
    actor = Actor(user=olga)
    assert services.yank_release(actor=actor, release=release, reason="old") is True
    assert services.yank_release(actor=actor, release=release, reason="old") is False
    assert services.yank_release(actor=actor, release=release, reason="new") is True
    assert File.objects.get().yanked_reason == "new"
    assert Event.objects.filter(kind="release.yanked").count() == 2
    assert services.unyank_release(actor=actor, release=release) is True
    assert services.unyank_release(actor=actor, release=release) is False


def test_a_file_uploaded_to_a_yanked_release_is_yanked_too(
    client, demo, olga, make_token, tmp_path
):
    services.yank_release(actor=Actor(user=olga), release=demo.releases.get(), reason="bad")
    response = upload(client, make_sdist(tmp_path, name="demo", version="1.0"), make_token(olga))
    assert response.status_code == 200
    assert all(f["yanked"] == "bad" for f in simple_json(client)["files"])


def test_yank_reason_is_bounded_and_tied_to_its_field(demo, olga):
    response = signed_in(olga).post(
        "/manage/project/demo/release/1.0/yank/", {"reason": "x" * 1001}
    )
    assert response.status_code == 400
    assert 'aria-describedby="id_reason_helptext id_reason_error"' in response.content.decode()
    assert not Release.objects.get().yanked


def test_the_release_page_offers_yanking_and_owner_deletions(demo, olga, bob):
    make_maintainer(demo, olga, bob)
    owner_page = signed_in(olga).get("/manage/project/demo/release/1.0/").content.decode()
    assert "/manage/project/demo/release/1.0/yank/" in owner_page
    assert "/manage/project/demo/file/demo-1.0-py3-none-any.whl/delete/" in owner_page
    maintainer_page = signed_in(bob).get("/manage/project/demo/release/1.0/").content.decode()
    assert "/manage/project/demo/release/1.0/yank/" in maintainer_page
    assert "/delete/" not in maintainer_page


# --- deletions -------------------------------------------------------------------------------

WHEEL = "demo-1.0-py3-none-any.whl"


def test_deleting_a_file_needs_recent_reauthentication(
    demo, olga, django_capture_on_commit_callbacks
):
    owner = signed_in(olga)
    path = f"/manage/project/demo/file/{WHEEL}/delete/"
    asked = owner.post(path, {"confirm": WHEEL})
    assert asked.status_code == 302 and "/account/reauthenticate/" in asked["Location"]
    assert File.objects.filter(filename=WHEEL).exists()
    reauthenticate(owner)
    with django_capture_on_commit_callbacks(execute=True):
        done = owner.post(path, {"confirm": WHEEL})
    assert done.status_code == 303, done.content[:500]
    assert not File.objects.exists()
    # the reauthentication expires (ACCOUNT_REAUTHENTICATION_TIMEOUT, 300 s by default)
    with time_machine.travel(timezone.now() + timedelta(minutes=10)):
        later = owner.get("/manage/project/demo/delete/")
    assert later.status_code == 302 and "/account/reauthenticate/" in later["Location"]


def test_a_deleted_file_name_is_refused_forever(
    client, demo, olga, make_token, tmp_path, django_capture_on_commit_callbacks
):
    assert len(stored_blobs()) == 2  # the wheel and its PEP 658 metadata
    simple_json(client)  # cached
    owner = signed_in(olga)
    reauthenticate(owner)
    with django_capture_on_commit_callbacks(execute=True):
        owner.post(f"/manage/project/demo/file/{WHEEL}/delete/", {"confirm": WHEEL})
    assert stored_blobs() == []
    assert simple_json(client)["files"] == []
    assert FilenameRecord.objects.filter(filename=WHEEL).exists()
    assert Project.objects.get().total_size == 0
    event = Event.objects.get(kind="file.deleted")
    assert event.payload["filename"] == WHEEL and event.actor_username == "olga"

    again = upload(
        client,
        make_wheel(tmp_path, name="demo", version="1.0", extra_members={"demo/x.py": b"x = 1\n"}),
        make_token(olga),
    )
    assert again.status_code == 400
    assert "has already been used" in again.reason_phrase


def test_a_wrong_confirmation_deletes_nothing(demo, olga):
    owner = signed_in(olga)
    reauthenticate(owner)
    response = owner.post(f"/manage/project/demo/file/{WHEEL}/delete/", {"confirm": "demo"})
    assert response.status_code == 400
    assert 'id="id_confirm_error"' in response.content.decode()
    response = owner.post("/manage/project/demo/delete/", {"confirm": "dem"})
    assert response.status_code == 400
    assert File.objects.exists() and Project.objects.exists()


def test_deleting_a_release_removes_its_files_from_the_api(
    client, demo2, olga, django_capture_on_commit_callbacks
):
    simple_json(client)
    owner = signed_in(olga)
    reauthenticate(owner)
    assert owner.get("/manage/project/demo/release/2.0/delete/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        done = owner.post("/manage/project/demo/release/2.0/delete/", {"confirm": "2.0"})
    assert done.status_code == 303
    page = simple_json(client)
    assert [f["filename"] for f in page["files"]] == [WHEEL]
    assert page["versions"] == ["1.0"]
    assert client.get("/pypi/demo/2.0/json").status_code == 404
    assert len(stored_blobs()) == 2  # only 1.0's wheel and metadata remain
    event = Event.objects.get(kind="release.deleted")
    assert event.payload == {
        "version": "2.0",
        "files": ["demo-2.0-py3-none-any.whl", "demo-2.0.tar.gz"],
    }


def test_deleting_a_project_reserves_its_name_for_its_owners(
    client, demo, olga, bob, eve, make_token, tmp_path, django_capture_on_commit_callbacks
):
    make_maintainer(demo, olga, bob)
    eve_token = make_token(eve)
    owner = signed_in(olga)
    reauthenticate(owner)
    with django_capture_on_commit_callbacks(execute=True):
        done = owner.post("/manage/project/demo/delete/", {"confirm": "demo"})
    assert done.status_code == 303 and done["Location"] == "/manage/projects/"
    assert not Project.objects.exists() and not Role.objects.exists()
    assert stored_blobs() == []
    assert client.get("/simple/demo/").status_code == 404
    assert "demo" not in client.get("/simple/").content.decode()
    reservation = DeletedProject.objects.get()
    assert reservation.owner_ids == [olga.pk]  # Maintainers are not owners
    event = Event.objects.get(kind="project.deleted")
    assert event.project_name == "demo" and event.payload["releases"] == 1

    wheel = make_wheel(tmp_path, name="Demo", version="5.0")
    refused = upload(client, wheel, eve_token)
    assert refused.status_code == 403
    assert "reserved for its former owners" in refused.reason_phrase
    assert not Project.objects.exists()
    # a Maintainer is not an owner either
    assert (
        upload(
            client, make_wheel(tmp_path, name="demo", version="5.1"), make_token(bob)
        ).status_code
        == 403
    )

    # after the reservation period, anyone may take the name
    with time_machine.travel(timezone.now() + timedelta(days=31)):
        taken = upload(Client(), wheel, eve_token)
    assert taken.status_code == 200, taken.content
    assert Role.objects.get().user == eve


def test_a_former_owner_may_recreate_a_deleted_project(client, demo, olga, make_token, tmp_path):
    services.delete_project(actor=Actor(user=olga), project=demo)
    # the old file name stays used; a new version re-creates the project
    again = upload(client, make_wheel(tmp_path, name="demo", version="1.1"), make_token(olga))
    assert again.status_code == 200, again.content
    assert Role.objects.get().user == olga
    assert not DeletedProject.objects.exists()  # the reservation ended with the re-creation


def test_only_owners_delete_and_maintainers_get_403(demo, olga, bob):
    make_maintainer(demo, olga, bob)
    maintainer = signed_in(bob)
    reauthenticate(maintainer)
    assert (
        maintainer.post(
            f"/manage/project/demo/file/{WHEEL}/delete/", {"confirm": WHEEL}
        ).status_code
        == 403
    )
    assert (
        maintainer.post("/manage/project/demo/release/1.0/delete/", {"confirm": "1.0"}).status_code
        == 403
    )
    assert File.objects.exists()


# --- PEP 792 status, for the admin -----------------------------------------------------------


def test_set_project_status_is_for_operators_and_shows_at_once(client, demo, olga):
    simple_json(client)
    with pytest.raises(NotAllowed):
        services.set_project_status(
            actor=Actor(user=olga), project=demo, status="archived", reason="done"
        )
    assert services.set_project_status(
        actor=Actor.operator(), project=demo, status="archived", reason="done"
    )
    assert simple_json(client)["project-status"] == {"status": "archived", "reason": "done"}
    assert services.set_project_status(actor=Actor.operator(), project=demo, status="quarantined")
    assert "demo" not in client.get("/simple/").content.decode()
    assert simple_json(client)["files"] == []
    assert Event.objects.filter(kind="project.status.changed").count() == 2


def test_yank_unyank_and_deletions_call_the_signed_metadata_hook(demo2, olga, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(services, "_metadata_hooks", [])
    services.on_metadata_changed(calls.append)
    actor = Actor(user=olga)
    release = Release.objects.get(version="2.0")
    services.yank_release(actor=actor, release=release)
    services.unyank_release(actor=actor, release=release)
    services.delete_file(actor=actor, file=File.objects.get(filename="demo-2.0.tar.gz"))
    services.delete_release(actor=actor, release=release)
    services.delete_project(actor=actor, project=demo2)
    assert calls == ["demo"] * 5
