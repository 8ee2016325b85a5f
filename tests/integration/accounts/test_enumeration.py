"""No account enumeration (issue 9 §8): sign-in, password reset and sign-up answer alike whether
or not an account exists (ACCOUNT_PREVENT_ENUMERATION).

Each pair of requests is compared on status, redirect and page text (the CSRF token and the
value the client typed set aside), and on the mail sent: exactly one message to the address
asked about either way, so neither the answer nor its timing (a mail sent or not) tells an
outsider whether the account exists. What the mail says is for the address's owner only.
"""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from bastion.accounts.models import User
from tests.integration.accounts.conftest import verified_user

pytestmark = pytest.mark.django_db

PASSWORD = "a long enough passphrase 42"


@pytest.fixture
def carol(db) -> User:
    return verified_user("carol", PASSWORD)


def page(response, *typed: str) -> str:
    """The page text without what differs by construction: the CSRF token, the typed values."""
    text = response.content.decode()
    text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "csrf", text)
    for value in typed:
        text = text.replace(value, "<typed>")
    return text


def form_errors(response) -> dict[str, list[str]]:
    return {
        field: [str(m) for m in messages]
        for field, messages in response.context["form"].errors.items()
    }


def test_sign_in_with_an_unknown_name_or_a_wrong_password_reads_the_same(client, carol):
    for login in ("carol", "carol@example.com"):
        known = client.post("/account/login/", {"login": login, "password": "wrong password"})
        unknown_login = login.replace("carol", "nobody")
        unknown = client.post(
            "/account/login/", {"login": unknown_login, "password": "wrong password"}
        )
        assert known.status_code == unknown.status_code == 200
        assert form_errors(known) == form_errors(unknown)
        assert form_errors(known)  # and there is an error to read
        assert page(known, login) == page(unknown, unknown_login)


def test_password_reset_for_an_unknown_and_a_known_address_reads_the_same(client, carol):
    known = client.post("/account/password/reset/", {"email": "carol@example.com"})
    unknown = client.post("/account/password/reset/", {"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"]
    assert page(client.get(known["Location"])) == page(client.get(unknown["Location"]))
    # one mail to each address asked about: a reset link for carol, a notice for the other
    assert sorted(message.to[0] for message in mail.outbox) == [
        "carol@example.com",
        "nobody@example.com",
    ]


def test_sign_up_with_a_taken_address_reads_like_a_fresh_one(carol):
    def sign_up(email: str, username: str) -> tuple[int, str, str]:
        client = Client()  # a visitor of their own
        response = client.post(
            "/account/signup/",
            {"email": email, "username": username, "password1": PASSWORD, "password2": PASSWORD},
        )
        return (
            response.status_code,
            response["Location"],
            page(client.get(response["Location"]), email),
        )

    fresh = sign_up("dave@example.com", "dave")
    taken = sign_up("carol@example.com", "erin")
    assert fresh[0] == 302
    assert fresh == taken
    # the new address gets its verification link, the taken one a notice to its owner
    assert [message.to[0] for message in mail.outbox] == ["dave@example.com", "carol@example.com"]
    assert User.objects.filter(username="dave").exists()
    assert not User.objects.filter(username="erin").exists()
