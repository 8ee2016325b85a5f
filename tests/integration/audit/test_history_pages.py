"""Who sees which security events, and sign-in/sign-out recorded through allauth's views."""

from __future__ import annotations

import json

import pytest

from bastion.accounts.services import create_user
from bastion.actors import Actor
from bastion.audit.models import Event
from bastion.projects.models import Project, Role
from tests.integration.audit.test_events import post
from tests.unit.core.builders import make_wheel

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("without_2fa_requirement")]
PASSWORD = "a long enough passphrase 42"


@pytest.fixture
def people(db):
    def make(name, **extra):
        return create_user(
            actor=Actor.operator(),
            username=name,
            email=f"{name}@example.com",
            password=PASSWORD,
            email_verified=True,
            **extra,
        )

    return {
        "alice": make("alice"),
        "bob": make("bob"),
        "eve": make("eve"),
        "root": make("root", superuser=True),
    }


@pytest.fixture
def project(client, people, make_token, tmp_path):
    token = make_token(people["alice"], name="ci")
    assert post(client, make_wheel(tmp_path), token).status_code == 200
    found = Project.objects.get()
    Role.objects.create(user=people["bob"], project=found, role_name="Maintainer")
    return found


def sign_in(client, login, password=PASSWORD, address="198.51.100.7"):
    return client.post(
        "/account/login/",
        {"login": login, "password": password},
        REMOTE_ADDR=address,
        HTTP_USER_AGENT="Mozilla/5.0 test",
    )


def test_sign_in_success_failure_and_sign_out_are_recorded(client, people):
    assert sign_in(client, "alice", "wrong password").status_code == 200
    failed = Event.objects.get(kind="account.signin.failed")
    assert failed.subject_username == "alice"
    assert failed.credential == "anonymous"
    assert failed.ip_address == "198.51.100.7"
    assert sign_in(client, "alice").status_code == 302
    succeeded = Event.objects.get(kind="account.signin.succeeded")
    assert succeeded.actor_username == "alice"
    assert succeeded.credential == "session"
    assert succeeded.payload == {"method": "password", "methods": ["password"]}
    assert succeeded.user_agent == "Mozilla/5.0 test"
    client.post("/account/logout/")
    assert Event.objects.filter(kind="account.signout", subject_username="alice").exists()


def test_unknown_login_failure_does_not_echo_the_login(client, people):
    sign_in(client, "nobody-here", "x")
    event = Event.objects.get(kind="account.signin.failed")
    assert event.subject_user_id is None and event.payload["login"] == ""


def test_history_needs_a_session(client, people):
    response = client.get("/account/history/")
    assert response.status_code == 302 and response["Location"].startswith("/account/login/")


def test_user_sees_own_events_with_full_address(client, people, project):
    sign_in(client, "alice")
    page = client.get("/account/history/").content.decode()
    assert "account.signin.succeeded" in page
    assert "198.51.100.7" in page  # her own address, in full
    assert "file.uploaded" in page  # an upload she made with a token
    assert "token “ci”" in page


def test_maintainer_sees_project_history_with_coarse_addresses(client, people, project):
    sign_in(client, "bob")
    response = client.get(f"/manage/project/{project.normalized_name}/history/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "file.uploaded" in page and "project.created" in page
    assert "127.0.0.0/24" in page or "203.0.113.0/24" in page
    assert "203.0.113.57" not in page  # alice's full address is not shown to bob
    filtered = client.get(f"/manage/project/{project.normalized_name}/history/?kind=release")
    assert "release.created" in filtered.content.decode()
    assert "file.uploaded" not in filtered.content.decode()
    # the JSON feed is for owners only
    feed = client.get(f"/manage/project/{project.normalized_name}/history.json")
    assert feed.status_code == 404


def test_owner_json_feed(client, people, project):
    sign_in(client, "alice")
    feed = client.get(f"/manage/project/{project.normalized_name}/history.json")
    assert feed.status_code == 200
    body = json.loads(feed.content)
    kinds = [e["kind"] for e in body["events"]]
    assert "file.uploaded" in kinds and "project.created" in kinds
    uploaded = next(e for e in body["events"] if e["kind"] == "file.uploaded")
    assert uploaded["token_name"] == "ci" and uploaded["credential"] == "token"
    assert uploaded["ip"] == "203.0.113.57"  # her own event: full address


def test_outsider_cannot_see_project_history(client, people, project):
    sign_in(client, "eve")
    assert client.get(f"/manage/project/{project.normalized_name}/history/").status_code == 404
    assert client.get(f"/manage/project/{project.normalized_name}/history.json").status_code == 404
    assert client.get("/manage/history/").status_code == 404


def test_admin_sees_everything(client, people, project):
    sign_in(client, "root")
    page = client.get("/manage/history/").content.decode()
    assert "203.0.113.57" in page and "account.created" in page
    assert client.get(f"/manage/project/{project.normalized_name}/history.json").status_code == 200


def test_pagination(client, people, project, make_token):
    for n in range(60):
        make_token(people["alice"], name=f"t{n}")
    sign_in(client, "alice")
    first = client.get("/account/history/").content.decode()
    assert "Page 1 of 2" in first
    second = client.get("/account/history/?page=2").content.decode()
    assert "Page 2 of 2" in second
