"""The /manage/ pages: my projects, a project's overview, collaborators by invitation.

Users sign in with ``force_login`` and the 2FA policy switched off (``without_2fa_requirement``):
these tests are about project roles, not the second factor.
"""

from __future__ import annotations

import pytest
from django.test import Client

from bastion.actors import Actor
from bastion.audit.models import Event
from bastion.projects import services
from bastion.projects.errors import NotAllowed
from bastion.projects.models import Invitation, Project, Role
from tests.integration.accounts.conftest import verified_user
from tests.integration.projects.conftest import PASSWORD
from tests.integration.uploads.test_upload_endpoint import upload
from tests.unit.core.builders import make_wheel

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("without_2fa_requirement")]


def make_user(username: str):
    return verified_user(username, PASSWORD)


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def reauthenticate(client: Client) -> None:
    response = client.post("/account/reauthenticate/", {"password": PASSWORD})
    assert response.status_code == 302, response.content[:300]


def kinds(project: str = "demo") -> list[str]:
    return list(
        Event.objects.filter(project_name=project).order_by("seq").values_list("kind", flat=True)
    )


def make_maintainer(project: Project, owner, user) -> None:
    invitation = services.invite_collaborator(
        actor=Actor(user=owner), project=project, username=user.username, role_name="Maintainer"
    )
    services.accept_invitation(actor=Actor(user=user), invitation=invitation)


# --- pages -----------------------------------------------------------------------------------


def test_my_projects_lists_role_latest_version_and_links(demo, olga):
    page = signed_in(olga).get("/manage/projects/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'href="/manage/project/demo/"' in html
    assert "Owner" in html and "1.0" in html
    assert 'href="/manage/project/demo/history/"' in html
    assert html.count("<h1") == 1


def test_my_projects_needs_sign_in(client, db):
    response = client.get("/manage/projects/")
    assert response.status_code == 302 and "/account/login/" in response["Location"]


def test_overview_shows_releases_yank_state_and_collaborators(demo, olga, bob):
    make_maintainer(demo, olga, bob)
    services.yank_release(
        actor=Actor(user=olga), release=demo.releases.get(), reason="broken build"
    )
    page = signed_in(bob).get("/manage/project/demo/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Yanked" in html and "broken build" in html
    assert "olga" in html and "bob" in html
    assert "/manage/project/demo/delete/" not in html  # Maintainers see no deletion


def test_outsiders_get_404_on_every_manage_page(demo, eve):
    client = signed_in(eve)
    for path in (
        "/manage/project/demo/",
        "/manage/project/demo/collaborators/",
        "/manage/project/demo/release/1.0/",
        "/manage/project/demo/delete/",
    ):
        assert client.get(path).status_code == 404, path
    for path in (
        "/manage/project/demo/collaborators/",
        "/manage/project/demo/release/1.0/yank/",
        "/manage/project/demo/collaborators/remove/",
    ):
        assert client.post(path, {"username": "olga"}).status_code == 404, path
    assert not demo.releases.get().yanked


def test_a_normalized_or_unnormalized_name_reaches_the_same_project(demo, olga):
    assert signed_in(olga).get("/manage/project/Demo/").status_code == 200


# --- invitations -----------------------------------------------------------------------------


def test_invite_accept_then_upload_with_a_project_scoped_token(
    demo, olga, bob, make_token, tmp_path, mailoutbox
):
    owner = signed_in(olga)
    sent = owner.post(
        "/manage/project/demo/collaborators/", {"username": "bob", "role": "Maintainer"}
    )
    assert sent.status_code == 303, sent.content[:500]
    invitation = Invitation.objects.get(project=demo, user=bob)
    assert invitation.role_name == "Maintainer"
    assert not Role.objects.filter(project=demo, user=bob).exists()
    mail = next(m for m in mailoutbox if m.to == ["bob@example.com"])
    assert "demo" in mail.subject and "/manage/invitations/" in mail.body

    token = make_token(bob, projects=["demo"])
    refused = upload(Client(), make_wheel(tmp_path, name="demo", version="2.0"), token)
    assert refused.status_code == 403  # nothing before the invitation is accepted

    invitee = signed_in(bob)
    listed = invitee.get("/manage/invitations/")
    assert f"/manage/invitations/{invitation.pk}/accept/" in listed.content.decode()
    accepted = invitee.post(f"/manage/invitations/{invitation.pk}/accept/")
    assert accepted.status_code == 303 and accepted["Location"] == "/manage/project/demo/"
    assert Role.objects.get(project=demo, user=bob).role_name == "Maintainer"
    assert not Invitation.objects.exists()

    response = upload(Client(), make_wheel(tmp_path, name="demo", version="2.0"), token)
    assert response.status_code == 200, response.content
    about_bob = Event.objects.filter(
        project_name="demo", subject_username="bob", kind__startswith="project."
    ).exclude(kind="project.token.created")
    assert list(about_bob.order_by("seq").values_list("kind", flat=True)) == [
        "project.invitation.created",
        "project.invitation.accepted",
        "project.role.added",
    ]
    added = Event.objects.get(kind="project.role.added", subject_username="bob")
    assert added.actor_username == "bob" and added.payload["role"] == "Maintainer"


def test_accepting_a_role_changes_the_project_json_at_once(demo, olga, bob, client):
    before = client.get("/pypi/demo/json")
    make_maintainer(demo, olga, bob)
    after = client.get("/pypi/demo/json")
    assert before["ETag"] != after["ETag"]


def test_decline(demo, olga, bob):
    invitation = services.invite_collaborator(
        actor=Actor(user=olga), project=demo, username="bob", role_name="Owner"
    )
    response = signed_in(bob).post(f"/manage/invitations/{invitation.pk}/decline/")
    assert response.status_code == 303
    assert not Invitation.objects.exists()
    assert not Role.objects.filter(user=bob).exists()
    assert kinds()[-1] == "project.invitation.declined"


def test_revoke(demo, olga, bob):
    invitation = services.invite_collaborator(
        actor=Actor(user=olga), project=demo, username="bob", role_name="Maintainer"
    )
    response = signed_in(olga).post("/manage/project/demo/invitations/revoke/", {"username": "bob"})
    assert response.status_code == 303
    assert kinds()[-1] == "project.invitation.revoked"
    assert signed_in(bob).post(f"/manage/invitations/{invitation.pk}/accept/").status_code == 404
    assert not Role.objects.filter(user=bob).exists()


def test_only_the_invited_user_can_answer(demo, olga, bob, eve):
    invitation = services.invite_collaborator(
        actor=Actor(user=olga), project=demo, username="bob", role_name="Owner"
    )
    assert signed_in(eve).post(f"/manage/invitations/{invitation.pk}/accept/").status_code == 404
    assert signed_in(olga).post(f"/manage/invitations/{invitation.pk}/accept/").status_code == 404
    assert Invitation.objects.filter(pk=invitation.pk).exists()


def test_invitation_errors_are_tied_to_the_username_field(demo, olga, bob):
    owner = signed_in(olga)
    unknown = owner.post(
        "/manage/project/demo/collaborators/", {"username": "nobody", "role": "Maintainer"}
    )
    assert unknown.status_code == 400
    html = unknown.content.decode()
    assert 'id="id_username_error"' in html and "no user named" in html
    assert 'aria-describedby="id_username_error"' in html
    assert (
        owner.post(
            "/manage/project/demo/collaborators/", {"username": "olga", "role": "Owner"}
        ).status_code
        == 400
    )  # already a collaborator
    owner.post("/manage/project/demo/collaborators/", {"username": "bob", "role": "Owner"})
    again = owner.post(
        "/manage/project/demo/collaborators/", {"username": "bob", "role": "Maintainer"}
    )
    assert again.status_code == 400 and "already invited" in again.content.decode()
    assert Invitation.objects.count() == 1


# --- roles -----------------------------------------------------------------------------------


def test_maintainers_cannot_invite_change_roles_remove_or_delete(demo, olga, bob, eve):
    make_maintainer(demo, olga, bob)
    client = signed_in(bob)
    assert (
        client.post(
            "/manage/project/demo/collaborators/", {"username": "eve", "role": "Owner"}
        ).status_code
        == 403
    )
    assert (
        client.post(
            "/manage/project/demo/collaborators/role/", {"username": "bob", "role": "Owner"}
        ).status_code
        == 403
    )
    assert (
        client.post("/manage/project/demo/collaborators/remove/", {"username": "olga"}).status_code
        == 403
    )
    assert client.get("/manage/project/demo/delete/").status_code == 403
    assert client.post("/manage/project/demo/delete/", {"confirm": "demo"}).status_code == 403
    assert client.get("/manage/project/demo/release/1.0/delete/").status_code == 403
    assert Role.objects.get(user=bob).role_name == "Maintainer"
    assert not Invitation.objects.exists()
    with pytest.raises(NotAllowed):
        services.delete_project(actor=Actor(user=bob), project=demo)
    assert Project.objects.filter(pk=demo.pk).exists()


def test_a_maintainer_can_leave(demo, olga, bob):
    make_maintainer(demo, olga, bob)
    response = signed_in(bob).post(
        "/manage/project/demo/collaborators/remove/", {"username": "bob"}
    )
    assert response.status_code == 303 and response["Location"] == "/manage/projects/"
    assert not Role.objects.filter(user=bob).exists()
    removed = Event.objects.get(kind="project.role.removed")
    assert removed.payload["left"] is True and removed.subject_username == "bob"


def test_the_last_owner_cannot_leave_be_removed_or_be_demoted(demo, olga, bob):
    owner = signed_in(olga)
    demoted = owner.post(
        "/manage/project/demo/collaborators/role/", {"username": "olga", "role": "Maintainer"}
    )
    assert demoted.status_code == 409 and "last Owner" in demoted.content.decode()
    left = owner.post("/manage/project/demo/collaborators/remove/", {"username": "olga"})
    assert left.status_code == 409
    assert Role.objects.get(user=olga).role_name == "Owner"

    make_maintainer(demo, olga, bob)
    promoted = owner.post(
        "/manage/project/demo/collaborators/role/", {"username": "bob", "role": "Owner"}
    )
    assert promoted.status_code == 303
    changed = Event.objects.get(kind="project.role.changed")
    assert changed.payload == {"user": "bob", "role": "Owner", "previous": "Maintainer"}
    # two Owners now: olga may leave, and then bob is the last one
    assert (
        owner.post("/manage/project/demo/collaborators/remove/", {"username": "olga"}).status_code
        == 303
    )
    assert (
        signed_in(bob)
        .post("/manage/project/demo/collaborators/remove/", {"username": "bob"})
        .status_code
        == 409
    )
    assert list(Role.objects.values_list("user__username", "role_name")) == [("bob", "Owner")]


def test_an_owner_removes_a_maintainer_whose_uploads_then_stop(
    demo, olga, bob, make_token, tmp_path
):
    make_maintainer(demo, olga, bob)
    token = make_token(bob, projects=["demo"])
    assert (
        signed_in(olga)
        .post("/manage/project/demo/collaborators/remove/", {"username": "bob"})
        .status_code
        == 303
    )
    response = upload(Client(), make_wheel(tmp_path, name="demo", version="3.0"), token)
    assert response.status_code == 403
    assert Event.objects.get(kind="project.role.removed").actor_username == "olga"


def test_api_token_actors_cannot_manage(demo, olga, bob):
    from bastion.tokens.models import ApiToken

    token = ApiToken.objects.first()
    with pytest.raises(NotAllowed):
        services.invite_collaborator(
            actor=Actor(user=olga, token=token), project=demo, username="bob", role_name="Owner"
        )
    with pytest.raises(NotAllowed):
        services.yank_release(actor=Actor(user=olga, token=token), release=demo.releases.get())
