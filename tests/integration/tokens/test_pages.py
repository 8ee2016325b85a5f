"""The API token pages: list, create (second factor and recent reauthentication), shown once,
the e-mail, revoke; and the tokens they make really upload, until revoked.

The clock is frozen at T0 (time-machine) so TOTP codes and reauthentication ages are exact.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.test import Client, override_settings

from bastion.actors import Actor
from bastion.audit.models import Event
from bastion.projects.models import Project, Role, RoleName
from bastion.tokens.models import ApiToken
from bastion.tokens.services import create_token
from tests.integration.tokens.conftest import T0, make_publisher, reauthenticate
from tests.integration.uploads.test_upload_endpoint import upload
from tests.unit.core.builders import make_wheel

pytestmark = pytest.mark.django_db
TOKEN = re.compile(r"bastion-[A-Za-z0-9_\-]+")


def create(client: Client, name: str = "ci", **fields: object):
    return client.post("/account/tokens/new/", {"name": name, "scope": "account", **fields})


def secret_of(response) -> str:
    assert response.status_code == 200, response.content[:800]
    match = TOKEN.search(response.content.decode())
    assert match, "the new token is not on the page"
    return match.group(0)


def own_project(user, name: str, role: str = RoleName.OWNER) -> Project:
    project = Project.objects.create(name=name, normalized_name=name, confusable_key=name)
    Role.objects.create(user=user, project=project, role_name=role)
    return project


# --- the list --------------------------------------------------------------------------------


def test_the_list_needs_a_signed_in_user(client):
    response = client.get("/account/tokens/")
    assert response.status_code == 302
    assert response["Location"].startswith("/account/login/")


def test_the_list_shows_scope_expiry_and_last_use_never_the_token(signed_in, publisher, tmp_path):
    _row, secret = create_token(
        actor=Actor.operator(),
        user=publisher,
        name="release-bot",
        project_names=["demo"],
        expires_in=timedelta(days=30),
        now=T0,
    )
    create_token(actor=Actor.operator(), user=publisher, name="laptop", now=T0)
    assert upload(Client(), make_wheel(tmp_path, name="demo"), secret).status_code == 200

    page = signed_in.get("/account/tokens/")
    assert page.status_code == 200
    assert "no-store" in page["Cache-Control"]
    html = page.content.decode()
    assert "release-bot" in html and "laptop" in html
    assert '<a href="/project/demo/">demo</a>' in html  # the project scope
    assert "Entire account" in html  # the user-wide one
    assert "Never used" in html  # laptop
    assert "from 127.0.0.0/24" in html  # the coarse address of release-bot's last use
    assert 'datetime="2027-01-01T12:00:05+00:00"' in html  # 30 days after T0
    assert secret not in html and not TOKEN.search(html)
    assert html.count("<h1") == 1


def test_the_last_use_keeps_only_the_coarse_address(publisher, tmp_path, frozen):
    row, secret = create_token(actor=Actor.operator(), user=publisher, name="ci", now=T0)
    response = upload(
        Client(REMOTE_ADDR="2001:db8:1234:5678::9"), make_wheel(tmp_path, name="demo"), secret
    )
    assert response.status_code == 200
    row.refresh_from_db()
    assert row.last_used == T0
    assert row.last_used_from == "2001:db8:1234::/48"


# --- creating --------------------------------------------------------------------------------


def test_creating_asks_for_reauthentication_then_shows_the_token_once(
    signed_in, publisher, mailoutbox
):
    first = signed_in.get("/account/tokens/new/")
    assert first.status_code == 302
    assert first["Location"] == "/account/reauthenticate/?next=%2Faccount%2Ftokens%2Fnew%2F"

    back = signed_in.post(
        "/account/reauthenticate/?next=%2Faccount%2Ftokens%2Fnew%2F",
        {"password": "correct horse battery staple 9"},
    )
    assert back.status_code == 302 and back["Location"] == "/account/tokens/new/"
    form = signed_in.get("/account/tokens/new/")
    assert form.status_code == 200
    assert b'<label for="id_name">' in form.content

    shown = create(signed_in, "ci")
    secret = secret_of(shown)
    assert "no-store" in shown["Cache-Control"]
    html = shown.content.decode()
    assert f'value="{secret}"' in html and "readonly" in html  # selectable without JavaScript
    assert 'src="/static/tokens/copy.js"' in html and "<script>" not in html
    assert "[bastion]" in html and "username = __token__" in html
    assert f"repository = {settings.BASTION.base_url}/legacy/" in html
    assert f"uv publish --publish-url {settings.BASTION.base_url}/legacy/ --token {secret}" in html

    token = ApiToken.objects.get(user=publisher, name="ci")
    assert token.project_names == [] and token.expires is None
    assert Event.objects.filter(kind="token.created", subject_username="dana").count() == 1
    (mail,) = [m for m in mailoutbox if "API token was created" in m.subject]
    assert mail.to == ["dana@example.com"]
    assert "“ci”" in mail.body and "does not expire" in mail.body
    assert secret not in mail.body and "bastion-" not in mail.body

    # Shown once: the list (and the form again) never carry it.
    for path in ("/account/tokens/", "/account/tokens/new/"):
        assert secret not in signed_in.get(path).content.decode()
    assert secret not in str(dict(signed_in.session))


def test_the_created_token_uploads_and_once_revoked_is_refused(reauthenticated, tmp_path):
    secret = secret_of(create(reauthenticated, "ci"))
    wheel = make_wheel(tmp_path, name="demo", version="1.0")
    assert upload(Client(), wheel, secret).status_code == 200

    token = ApiToken.objects.get(name="ci")
    revoked = reauthenticated.post(f"/account/tokens/{token.pk}/revoke/")
    assert revoked.status_code == 302 and revoked["Location"] == "/account/tokens/"
    assert not ApiToken.objects.filter(pk=token.pk).exists()
    event = Event.objects.get(kind="token.revoked")
    assert event.payload == {"token_id": str(token.pk), "name": "ci"}
    assert event.credential == "session" and event.actor_username == "dana"

    again = upload(Client(), make_wheel(tmp_path, name="demo", version="1.1"), secret)
    assert again.status_code == 403


def test_a_project_scoped_token_uploads_to_its_projects_only(reauthenticated, publisher, tmp_path):
    own_project(publisher, "alpha")
    own_project(publisher, "beta", role=RoleName.MAINTAINER)
    form = reauthenticated.get("/account/tokens/new/")
    assert b'value="alpha"' in form.content and b'value="beta"' in form.content

    secret = secret_of(create(reauthenticated, "alpha-ci", scope="projects", projects=["alpha"]))
    assert ApiToken.objects.get(name="alpha-ci").project_names == ["alpha"]
    assert upload(Client(), make_wheel(tmp_path, name="alpha"), secret).status_code == 200
    refused = upload(Client(), make_wheel(tmp_path, name="beta"), secret)
    assert refused.status_code == 403


def test_an_expiry_date_ends_the_token_at_the_start_of_that_day(
    reauthenticated, mailoutbox, tmp_path, frozen
):
    secret = secret_of(create(reauthenticated, "short", expires="2026-12-05"))
    token = ApiToken.objects.get(name="short")
    assert token.expires == datetime(2026, 12, 5, tzinfo=UTC)
    assert any("It stops working on" in m.body for m in mailoutbox)
    assert upload(Client(), make_wheel(tmp_path, name="demo"), secret).status_code == 200
    frozen.move_to(datetime(2026, 12, 5, 0, 0, 1, tzinfo=UTC))
    late = upload(Client(), make_wheel(tmp_path, name="demo", version="2.0"), secret)
    assert late.status_code == 403


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"expires": "2026-12-02"}, "expires", "Choose a date after today."),
        ({"expires": "2020-01-01"}, "expires", "Choose a date after today."),
        ({"expires": "not a date"}, "expires", "Enter a valid date."),
        ({"scope": "projects"}, "projects", "Choose at least one project"),
        ({"scope": "projects", "projects": ["someone-elses"]}, "projects", "Select a valid choice"),
        ({"scope": "everything"}, "scope", "Select a valid choice"),
        ({"name": "   "}, "name", "This field is required."),
        ({"name": "x" * 101}, "name", "at most 100 characters"),
    ],
)
def test_invalid_requests_show_the_form_with_the_reason_beside_the_field(
    reauthenticated, fields, field, message
):
    Project.objects.create(name="someone-elses", normalized_name="someone-elses")
    response = reauthenticated.post(
        "/account/tokens/new/", {"name": "ci", "scope": "account", **fields}
    )
    assert response.status_code == 200
    assert not ApiToken.objects.exists()
    html = response.content.decode()
    assert message in html
    assert f'id="id_{field}_error"' in html or f'id="id_{field}_' in html
    assert 'role="alert"' in html


def test_a_name_already_in_use_is_refused(reauthenticated, publisher):
    create_token(actor=Actor.operator(), user=publisher, name="ci", now=T0)
    response = create(reauthenticated, "ci")
    assert response.status_code == 200
    assert "You already have a token with this name." in response.content.decode()
    assert ApiToken.objects.filter(user=publisher).count() == 1


def test_creating_needs_a_recent_reauthentication(reauthenticated, frozen):
    frozen.shift(settings.ACCOUNT_REAUTHENTICATION_TIMEOUT + 1)
    response = create(reauthenticated, "late")
    assert response.status_code == 302
    assert response["Location"].startswith("/account/reauthenticate/")
    assert not ApiToken.objects.exists()


def test_without_reauthentication_the_post_waits_for_it(signed_in, publisher):
    """allauth keeps the refused POST and replays it once the password is confirmed."""
    refused = create(signed_in, "after-reauth")
    assert refused.status_code == 302
    assert not ApiToken.objects.exists()
    replayed = signed_in.post(refused["Location"], {"password": "correct horse battery staple 9"})
    secret_of(replayed)
    assert "no-store" in replayed["Cache-Control"]
    assert ApiToken.objects.filter(user=publisher, name="after-reauth").exists()


@pytest.fixture
def no_2fa_policy():
    with override_settings(BASTION=dataclasses.replace(settings.BASTION, require_2fa=False)):
        yield


def test_creating_needs_a_second_factor_even_when_the_site_does_not(no_2fa_policy, frozen):
    user = make_publisher("erin", with_totp=False)
    client = Client()
    assert client.post(
        "/account/login/", {"login": "erin", "password": "correct horse battery staple 9"}
    ).status_code == 302
    reauthenticate(client)
    page = client.get("/account/tokens/")
    assert page.status_code == 200
    assert "Creating an API token needs a second factor" in page.content.decode()
    assert 'href="/account/tokens/new/"' not in page.content.decode()
    for response in (client.get("/account/tokens/new/"), create(client, "ci")):
        assert response.status_code == 302 and response["Location"] == "/account/2fa/"
    assert not ApiToken.objects.filter(user=user).exists()


def test_with_the_policy_on_the_pages_lead_to_the_second_factor_set_up(frozen):
    make_publisher("erin", with_totp=False)
    client = Client()
    client.post("/account/login/", {"login": "erin", "password": "correct horse battery staple 9"})
    for path in ("/account/tokens/", "/account/tokens/new/"):
        assert client.get(path)["Location"] == "/account/2fa/"


def test_a_csrf_token_is_required(publisher, frozen):
    client = Client(enforce_csrf_checks=True)
    client.force_login(publisher)
    token, _secret = create_token(actor=Actor.operator(), user=publisher, name="ci", now=T0)
    assert client.post(f"/account/tokens/{token.pk}/revoke/").status_code == 403
    assert ApiToken.objects.filter(pk=token.pk).exists()


# --- revoking --------------------------------------------------------------------------------


def test_another_users_token_cannot_be_revoked(signed_in, frozen):
    other = make_publisher("frank")
    token, _secret = create_token(actor=Actor.operator(), user=other, name="ci", now=T0)
    assert signed_in.post(f"/account/tokens/{token.pk}/revoke/").status_code == 404
    assert ApiToken.objects.filter(pk=token.pk).exists()
    assert not Event.objects.filter(kind="token.revoked").exists()


def test_revoking_is_post_only(signed_in, publisher):
    token, _secret = create_token(actor=Actor.operator(), user=publisher, name="ci", now=T0)
    assert signed_in.get(f"/account/tokens/{token.pk}/revoke/").status_code == 405
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_the_pages_render_in_french(reauthenticated):
    reauthenticated.cookies[settings.LANGUAGE_COOKIE_NAME] = "fr"
    page = reauthenticated.get("/account/tokens/new/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<html lang="fr">' in html
    assert "<h1>Créer un jeton d’API</h1>" in html and "Nom du jeton" in html
    assert "Tout le compte : chaque projet où vous pouvez publier" in html

