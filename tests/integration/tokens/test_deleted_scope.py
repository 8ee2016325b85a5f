"""A token scoped to projects that were all deleted stops working; a name in the scope that was
never a project still lets its first upload create it."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from bastion.actors import Actor
from bastion.audit.models import Event
from bastion.projects.models import DeletedProject, Project
from bastion.projects.services import delete_project
from bastion.tokens import services as token_services
from bastion.tokens.errors import TokenRefused
from tests.integration.uploads.test_upload_endpoint import upload
from tests.unit.core.builders import make_wheel

pytestmark = pytest.mark.django_db


def _delete(user, name: str) -> None:
    delete_project(
        actor=Actor(user=user), project=Project.objects.get(normalized_name=name), confirm=name
    )


@pytest.fixture
def published(client, alice, alice_token, tmp_path):
    """alice's projects ``alpha`` and ``beta``, published with her user-wide token."""
    for name in ("alpha", "beta"):
        assert upload(client, make_wheel(tmp_path, name=name), alice_token).status_code == 200


def test_once_every_project_of_its_scope_is_deleted_the_token_is_refused(
    published, alice, make_token, tmp_path
):
    scoped = make_token(alice, name="alpha-beta", projects=["alpha", "beta"])
    _delete(alice, "alpha")
    # One project of the scope remains: the token still works there.
    ok = upload(Client(), make_wheel(tmp_path, name="beta", version="2.0"), scoped)
    assert ok.status_code == 200

    _delete(alice, "beta")
    with pytest.raises(TokenRefused, match="every project of the token's scope was deleted"):
        token_services.authenticate(scoped, permission="upload", now=timezone.now())
    refused = upload(Client(), make_wheel(tmp_path, name="alpha", version="3.0"), scoped)
    assert refused.status_code == 403
    assert "deleted" in refused.reason_phrase
    assert Event.objects.filter(kind="token.refused").exists()


def test_the_refusal_outlives_the_name_reservation(published, alice, make_token):
    scoped = make_token(alice, name="alpha-only", projects=["alpha"])
    _delete(alice, "alpha")
    DeletedProject.objects.all().delete()  # the reservation ran out; the file names remain
    with pytest.raises(TokenRefused):
        token_services.authenticate(scoped, permission="upload", now=timezone.now())


def test_a_name_never_created_keeps_the_token_alive(published, alice, make_token, tmp_path):
    scoped = make_token(alice, name="alpha-and-new", projects=["alpha", "brand-new"])
    _delete(alice, "alpha")
    created = upload(Client(), make_wheel(tmp_path, name="brand-new"), scoped)
    assert created.status_code == 200


def test_user_wide_tokens_are_not_affected(published, alice, alice_token, tmp_path):
    _delete(alice, "alpha")
    _delete(alice, "beta")
    response = upload(Client(), make_wheel(tmp_path, name="gamma"), alice_token)
    assert response.status_code == 200
