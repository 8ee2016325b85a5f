"""Links in e-mails use BASTION_BASE_URL, never the request's (attacker-controlled) Host."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from bastion.accounts.services import create_user
from bastion.actors import Actor

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _memory_mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def test_password_reset_link_ignores_the_host_header(client):
    create_user(
        actor=Actor.operator(),
        username="alice",
        email="alice@example.com",
        password="a long enough passphrase 42",
        email_verified=True,
    )
    response = client.post(
        "/account/password/reset/",
        {"email": "alice@example.com"},
        HTTP_HOST="attacker.example",
    )
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    links = re.findall(r"https?://[^\s]+", mail.outbox[0].body)
    reset = [link for link in links if "/password/reset/key/" in link]
    assert reset, mail.outbox[0].body
    assert all(link.startswith("http://127.0.0.1:8000/account/") for link in reset)
    assert "attacker.example/account" not in mail.outbox[0].body
