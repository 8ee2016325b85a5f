"""The Django admin is reached only through bastion's own sign-in (password, then 2FA)."""

from __future__ import annotations

import pytest
from django.test import Client

from bastion.accounts.services import create_user
from bastion.actors import Actor

pytestmark = pytest.mark.django_db
PASSWORD = "an operator passphrase 12"


def test_the_admin_sends_anonymous_visitors_to_the_account_sign_in(client):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    login = client.get(response["Location"])
    assert login.status_code == 302
    assert login["Location"].startswith("/account/login/?next=/admin/")


def test_the_admin_password_form_cannot_sign_anyone_in():
    create_user(
        actor=Actor.operator(), username="root", email="root@example.com",
        password=PASSWORD, superuser=True, email_verified=True,
    )
    client = Client()
    response = client.post("/admin/login/", {"username": "root", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"].startswith("/account/login/")
    assert "_auth_user_id" not in client.session


def test_a_signed_in_superuser_without_a_second_factor_is_sent_to_its_set_up():
    create_user(
        actor=Actor.operator(), username="root", email="root@example.com",
        password=PASSWORD, superuser=True, email_verified=True,
    )
    client = Client()
    client.post("/account/login/", {"login": "root", "password": PASSWORD})
    assert client.get("/admin/")["Location"] == "/account/2fa/"


# --- operators' actions go through the services ------------------------------------------------


@pytest.fixture
def operator_client(without_2fa_requirement):
    root = create_user(
        actor=Actor.operator(), username="root", email="root@example.com",
        password=PASSWORD, superuser=True, email_verified=True,
    )
    client = Client()
    client.force_login(root)
    return client


def test_an_operator_finds_and_disables_an_account_whose_tokens_then_stop(
    operator_client, alice, alice_token, tmp_path
):
    from bastion.audit.models import Event
    from tests.integration.uploads.test_upload_endpoint import upload
    from tests.unit.core.builders import make_wheel

    found = operator_client.get("/admin/accounts/user/?q=alice")
    assert found.status_code == 200 and b"alice@example.com" in found.content
    response = operator_client.post(
        "/admin/accounts/user/",
        {"action": "disable_accounts", "_selected_action": [alice.pk]},
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert not alice.is_active
    event = Event.objects.get(kind="account.disabled")
    assert event.subject_username == "alice" and event.actor_username == "root"
    refused = upload(Client(), make_wheel(tmp_path), alice_token)
    assert refused.status_code == 403 and "disabled" in refused.reason_phrase


def test_an_operator_prohibits_a_name_for_new_projects(
    operator_client, alice, alice_token, tmp_path
):
    from bastion.audit.models import Event
    from bastion.uploads.models import ProhibitedName
    from tests.integration.uploads.test_upload_endpoint import upload
    from tests.unit.core.builders import make_wheel

    added = operator_client.post(
        "/admin/uploads/prohibitedname/add/", {"normalized_name": "Evil_Pkg", "comment": "abuse"}
    )
    assert added.status_code == 302
    assert ProhibitedName.objects.get().normalized_name == "evil-pkg"
    assert Event.objects.filter(kind="policy.name.prohibited", project_name="evil-pkg").exists()
    refused = upload(Client(), make_wheel(tmp_path, name="evil_pkg"), alice_token)
    assert refused.status_code == 400
    assert refused["X-Bastion-Error"] == "dist.name.prohibited"
    allowed = operator_client.post(
        "/admin/uploads/prohibitedname/",
        {"action": "allow_names", "_selected_action": [ProhibitedName.objects.get().pk]},
    )
    assert allowed.status_code == 302
    assert upload(Client(), make_wheel(tmp_path, name="evil_pkg"), alice_token).status_code == 200


def test_the_admin_offers_no_form_that_bypasses_the_services(operator_client, alice):
    assert operator_client.get("/admin/accounts/user/add/").status_code == 403
    page = operator_client.get(f"/admin/accounts/user/{alice.pk}/change/")
    assert page.status_code == 200
    assert b'name="is_active"' not in page.content  # read-only: the action is the way


def test_an_operator_quarantines_a_project_and_the_simple_api_follows(
    operator_client, alice, alice_token, tmp_path
):
    import json

    from bastion.audit.models import Event
    from bastion.projects.models import Project
    from tests.integration.uploads.test_upload_endpoint import upload
    from tests.unit.core.builders import make_wheel

    assert upload(Client(), make_wheel(tmp_path), alice_token).status_code == 200
    page = Client().get("/simple/demo/", HTTP_ACCEPT="application/vnd.pypi.simple.v1+json")
    assert json.loads(page.content)["files"]
    project = Project.objects.get(normalized_name="demo")
    response = operator_client.post(
        "/admin/projects/project/", {"action": "quarantine", "_selected_action": [project.pk]}
    )
    assert response.status_code == 302
    page = Client().get("/simple/demo/", HTTP_ACCEPT="application/vnd.pypi.simple.v1+json")
    body = json.loads(page.content)
    assert body["files"] == [] and body["project-status"]["status"] == "quarantined"
    event = Event.objects.get(kind="project.status.changed")
    assert event.actor_username == "root" and event.project_name == "demo"
    refused = upload(Client(), make_wheel(tmp_path, version="2.0"), alice_token)
    assert refused.status_code == 403


def test_an_operator_exempts_a_ci_account_from_the_upload_limits(operator_client, alice):
    from bastion.audit.models import Event

    response = operator_client.post(
        "/admin/accounts/user/", {"action": "exempt_from_limits", "_selected_action": [alice.pk]}
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.upload_limits_exempt
    assert Event.objects.get(kind="account.limits.exempted").subject_username == "alice"
