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
