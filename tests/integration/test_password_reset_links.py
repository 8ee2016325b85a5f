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


@pytest.fixture
def alice(db):
    return create_user(
        actor=Actor.operator(),
        username="alice",
        email="alice@example.com",
        password="a long enough passphrase 42",
        email_verified=True,
    )


def test_a_reset_asked_through_a_foreign_host_is_refused_and_mails_nothing(client, alice):
    response = client.post(
        "/account/password/reset/",
        {"email": "alice@example.com"},
        HTTP_HOST="attacker.example",
    )
    assert response.status_code == 400
    assert mail.outbox == []


def test_password_reset_link_ignores_the_host_header(client, alice):
    # localhost is accepted on the loopback default base URL; the link still uses the base URL.
    response = client.post(
        "/account/password/reset/",
        {"email": "alice@example.com"},
        HTTP_HOST="localhost:8000",
    )
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    links = re.findall(r"https?://[^\s]+", message.body)
    reset = [link for link in links if "/password/reset/key/" in link]
    assert reset, message.body
    assert all(link.startswith("http://127.0.0.1:8000/account/") for link in reset)
    assert "localhost" not in message.body and "localhost" not in message.subject
    assert message.subject.startswith("[127.0.0.1:8000] ")


def test_unknown_account_mail_links_use_the_base_url(client, settings):
    # allauth builds this mail's sign-up link itself, from the request.
    settings.ACCOUNT_EMAIL_UNKNOWN_ACCOUNTS = True
    response = client.post(
        "/account/password/reset/",
        {"email": "nobody@example.com"},
        HTTP_HOST="localhost:8000",
    )
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    body = mail.outbox[0].body
    assert "http://127.0.0.1:8000/account/signup/" in body, body
    assert "localhost" not in body
