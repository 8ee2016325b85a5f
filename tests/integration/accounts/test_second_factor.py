"""Enforced two-factor login: the policy, TOTP enrolment and sign-in with every accepted time
step burnt, recovery codes, the last factor kept, sessions ended on factor changes.

The clock is frozen (time-machine) wherever a TOTP code is computed.
"""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from allauth.mfa.models import Authenticator
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.twofactor.hotp import HOTP
from django.conf import settings
from django.test import Client, override_settings

from bastion.accounts import mfa
from bastion.accounts.models import User
from bastion.accounts.services import create_user
from bastion.actors import Actor
from bastion.audit.models import Event

# transaction=True: allauth records factor changes in on_commit callbacks
pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "correct horse battery staple 9"
T0 = datetime(2026, 12, 2, 12, 0, 5, tzinfo=UTC)  # 5 s into a 30 s step


def code_for(secret: str, at: datetime, offset: int = 0) -> str:
    step = int(at.timestamp()) // 30 + offset
    key = base64.b32decode(secret, casefold=True)
    return HOTP(key, 6, hashes.SHA1()).generate(step).decode()


@pytest.fixture
def user(db) -> User:
    return create_user(
        actor=Actor.operator(),
        username="carol",
        email="carol@example.com",
        password=PASSWORD,
        email_verified=True,
    )


def sign_in_password(client: Client, login: str = "carol", password: str = PASSWORD):
    return client.post("/account/login/", {"login": login, "password": password})


def enrol_totp(client: Client) -> str:
    """Reauthenticate, open the activation page, confirm with a code; returns the secret."""
    response = client.post("/account/reauthenticate/", {"password": PASSWORD})
    assert response.status_code == 302, response.content[:300]
    page = client.get("/account/2fa/totp/activate/")
    assert page.status_code == 200
    secret = page.context["form"].secret
    done = client.post("/account/2fa/totp/activate/", {"code": code_for(secret, T0)})
    assert done.status_code == 302, done.content[:500]
    return secret


@pytest.fixture
def enrolled(user) -> tuple[Client, str]:
    client = Client()
    with time_machine.travel(T0, tick=False):
        assert sign_in_password(client).status_code == 302
        secret = enrol_totp(client)
    return client, secret


# --- the policy ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/search/?q=x", "/account/history/", "/manage/projects/",
                                  "/account/tokens/", "/manage/project/demo/history/"])
def test_without_a_second_factor_every_page_leads_to_its_set_up(client, user, path):
    assert sign_in_password(client).status_code == 302
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == "/account/2fa/"


@pytest.mark.parametrize("path", ["/account/2fa/", "/account/email/", "/simple/", "/healthz"])
def test_the_set_up_verification_and_apis_stay_reachable(client, user, path):
    assert sign_in_password(client).status_code == 302
    assert client.get(path).status_code == 200


def test_sign_out_stays_reachable(client, user):
    assert sign_in_password(client).status_code == 302
    response = client.post("/account/logout/")
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_the_policy_can_be_switched_off(client, user):
    assert sign_in_password(client).status_code == 302
    with override_settings(BASTION=dataclasses.replace(settings.BASTION, require_2fa=False)):
        assert client.get("/account/history/").status_code == 200


# --- TOTP ----------------------------------------------------------------------------------


def test_enrolment_stores_the_secret_encrypted_and_records_it(enrolled, user):
    _client, secret = enrolled
    stored = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP).data["secret"]
    assert secret not in stored and stored.startswith("fernet:")
    assert mfa.decrypt_secret(stored) == secret
    added = Event.objects.filter(kind="account.2fa.added", subject_username="carol")
    assert {e.payload["type"] for e in added} >= {"totp", "recovery_codes"}


def test_enrolment_needs_a_valid_code_for_the_secret_shown(client, user):
    with time_machine.travel(T0, tick=False):
        sign_in_password(client)
        client.post("/account/reauthenticate/", {"password": PASSWORD})
        page = client.get("/account/2fa/totp/activate/")
        secret = page.context["form"].secret
        wrong = f"{(int(code_for(secret, T0)) + 1) % 1_000_000:06d}"
        response = client.post("/account/2fa/totp/activate/", {"code": wrong})
    assert response.status_code == 200
    assert not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


def test_the_enrolment_code_is_not_accepted_again_at_sign_in(enrolled):
    _client, secret = enrolled
    other = Client()
    with time_machine.travel(T0 + timedelta(seconds=10), tick=False):
        response = sign_in_password(other)
        assert response["Location"].startswith("/account/2fa/authenticate/")
        replay = other.post("/account/2fa/authenticate/", {"code": code_for(secret, T0)})
        assert replay.status_code == 200  # the form again, with an error
        assert "_auth_user_id" not in other.session
        # the code of the next step, still inside the ±1 tolerance, is fine
        fresh = other.post("/account/2fa/authenticate/", {"code": code_for(secret, T0, 1)})
    assert fresh.status_code == 302
    assert other.session["_auth_user_id"]


def test_a_code_accepted_at_sign_in_is_refused_everywhere_after(enrolled):
    _client, secret = enrolled
    first, second = Client(), Client()
    later = T0 + timedelta(seconds=60)
    with time_machine.travel(later, tick=False):
        code = code_for(secret, later)
        sign_in_password(first)
        assert first.post("/account/2fa/authenticate/", {"code": code}).status_code == 302
        sign_in_password(second)
        assert second.post("/account/2fa/authenticate/", {"code": code}).status_code == 200
        # an earlier step inside the tolerance is refused too: steps only move forward
        earlier = code_for(secret, later, -1)
        assert second.post("/account/2fa/authenticate/", {"code": earlier}).status_code == 200
        # nor at reauthentication
        reauth = first.post("/account/reauthenticate/", {"code": code})
        assert reauth.status_code == 200
    failed = Event.objects.filter(kind="account.2fa.failed", subject_username="carol")
    assert failed.count() >= 2
    succeeded = Event.objects.filter(kind="account.signin.succeeded").last()
    assert succeeded.payload["methods"] == ["password", "totp"]


def test_one_step_is_burnt_once_even_by_concurrent_requests(user):
    assert mfa.burn_step(user, 1000) is True
    assert mfa.burn_step(user, 1000) is False
    assert mfa.burn_step(user, 999) is False
    assert mfa.burn_step(user, 1001) is True


def test_matching_step_window_and_malformed_codes():
    secret = base64.b32encode(b"k" * 20).decode()
    now = T0.timestamp()
    step = int(now) // 30
    assert mfa.matching_step(secret, code_for(secret, T0), now=now) == step
    assert mfa.matching_step(secret, code_for(secret, T0, -1), now=now) == step - 1
    assert mfa.matching_step(secret, code_for(secret, T0, 1), now=now) == step + 1
    assert mfa.matching_step(secret, code_for(secret, T0, 2), now=now) is None
    for bad in ("", "12345", "1234567", "abcdef", "12 34 5x"):
        assert mfa.matching_step(secret, bad, now=now) is None


def test_secrets_do_not_decrypt_with_another_secret_key():
    stored = mfa.encrypt_secret("JBSWY3DPEHPK3PXP")
    with override_settings(SECRET_KEY="another-secret-key-" + "y" * 40):
        with pytest.raises(ValueError, match="BASTION_SECRET_KEY"):
            mfa.decrypt_secret(stored)
    with pytest.raises(ValueError, match="unencrypted"):
        mfa.decrypt_secret("JBSWY3DPEHPK3PXP")


# --- the last factor, sessions, recovery codes ---------------------------------------------


def test_the_last_second_factor_cannot_be_removed_while_required(enrolled, user):
    client, _secret = enrolled
    with time_machine.travel(T0 + timedelta(seconds=20), tick=False):
        client.post("/account/reauthenticate/", {"password": PASSWORD})
        response = client.post("/account/2fa/totp/deactivate/")
    assert response.status_code == 200  # the form again, with the refusal
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


def test_removing_a_factor_ends_every_other_session(enrolled, user):
    client, secret = enrolled
    other = Client()
    at = T0 + timedelta(seconds=90)
    with time_machine.travel(at, tick=False):
        sign_in_password(other)
        answer = other.post("/account/2fa/authenticate/", {"code": code_for(secret, at)})
        assert answer.status_code == 302
        with override_settings(BASTION=dataclasses.replace(settings.BASTION, require_2fa=False)):
            assert other.get("/account/history/").status_code == 200
            client.post("/account/reauthenticate/", {"password": PASSWORD})
            assert client.post("/account/2fa/totp/deactivate/").status_code == 302
            assert not Authenticator.objects.filter(user=user).exists()
            # the other session is signed out; this one stays
            assert other.get("/account/history/").status_code == 302
            assert client.get("/account/history/").status_code == 200
    assert Event.objects.filter(kind="account.2fa.removed", subject_username="carol").exists()


def test_a_recovery_code_signs_in_once_and_sends_a_mail(enrolled, user, mailoutbox):
    codes = Authenticator.objects.get(
        user=user, type=Authenticator.Type.RECOVERY_CODES
    ).wrap().get_unused_codes()
    assert len(codes) == 10
    mails_before = len(mailoutbox)
    first, second = Client(), Client()
    sign_in_password(first)
    assert first.post("/account/2fa/authenticate/", {"code": codes[0]}).status_code == 302
    assert first.session["_auth_user_id"]
    sign_in_password(second)
    assert second.post("/account/2fa/authenticate/", {"code": codes[0]}).status_code == 200
    assert "_auth_user_id" not in second.session
    used = Event.objects.get(kind="account.2fa.recovery-code.used")
    assert used.payload["remaining"] == 9
    notices = [m for m in mailoutbox[mails_before:] if "recovery code was used" in m.subject]
    assert [m.to for m in notices] == [["carol@example.com"]]
    assert "9 remain" in notices[0].body


def test_sign_up_can_be_closed(client):
    closed = dataclasses.replace(settings.BASTION, allow_signup=False)
    with override_settings(BASTION=closed):
        response = client.post(
            "/account/signup/",
            {"email": "new@example.com", "username": "newbie",
             "password1": PASSWORD, "password2": PASSWORD},
        )
    assert response.status_code in (200, 403)
    assert not User.objects.filter(username="newbie").exists()


def _assertion(counter: int) -> dict[str, object]:
    """An authentication response as a browser posts it, with the given signature counter
    (the signature itself is allauth's and fido2's to verify; only the counter matters here)."""
    from fido2.utils import websafe_encode
    from fido2.webauthn import AuthenticatorData

    data = AuthenticatorData.create(b"\0" * 32, AuthenticatorData.FLAG.UP, counter)
    client_data = b'{"type":"webauthn.get","challenge":"AA","origin":"http://localhost"}'
    return {
        "id": websafe_encode(b"credential"),
        "rawId": websafe_encode(b"credential"),
        "type": "public-key",
        "response": {
            "clientDataJSON": websafe_encode(client_data),
            "authenticatorData": websafe_encode(bytes(data)),
            "signature": websafe_encode(b"sig"),
        },
        "clientExtensionResults": {},
    }


def test_a_security_key_whose_counter_does_not_grow_is_refused(user):
    from django.core.exceptions import ValidationError

    key = Authenticator.objects.create(
        user=user, type=Authenticator.Type.WEBAUTHN, data={"name": "key", "credential": {}}
    )
    mfa.check_sign_count(key, _assertion(5))
    assert Authenticator.objects.get(pk=key.pk).data["sign_count"] == 5
    for replayed in (5, 4, 0):  # the same, a lower or no counter after a counting one: a clone
        with pytest.raises(ValidationError):
            mfa.check_sign_count(key, _assertion(replayed))
    mfa.check_sign_count(key, _assertion(6))
    assert Authenticator.objects.get(pk=key.pk).data["sign_count"] == 6
    # authenticators that never count (always 0) keep working
    synced = Authenticator.objects.create(
        user=user, type=Authenticator.Type.WEBAUTHN, data={"name": "passkey", "credential": {}}
    )
    mfa.check_sign_count(synced, _assertion(0))
    mfa.check_sign_count(synced, _assertion(0))


def test_an_email_change_needs_reauthentication_verification_and_notifies_the_old_address(
    enrolled, user, mailoutbox
):
    import re

    client, _secret = enrolled
    # the reauthentication of the enrolment is still recent: let it expire
    with time_machine.travel(T0 + timedelta(minutes=30), tick=False):
        asked = client.post("/account/email/", {"action_add": "", "email": "new@example.com"})
        assert asked.status_code == 302 and "/account/reauthenticate/" in asked["Location"]
        client.post("/account/reauthenticate/", {"password": PASSWORD})
        added = client.post("/account/email/", {"action_add": "", "email": "new@example.com"})
        assert added.status_code == 302
        user.refresh_from_db()
        assert user.email == "carol@example.com"  # nothing changes before verification
        link = next(m for m in mailoutbox if m.to == ["new@example.com"])
        key = re.search(r"/account/confirm-email/([^/\s]+)/", link.body).group(1)
        assert client.post(f"/account/confirm-email/{key}/").status_code == 302
    user.refresh_from_db()
    assert user.email == "new@example.com"
    notices = [m for m in mailoutbox if m.to == ["carol@example.com"] and "mail" in m.subject]
    assert notices, [m.subject for m in mailoutbox]
    assert Event.objects.filter(kind="account.email.changed", subject_username="carol").exists()


def test_a_password_change_ends_every_other_session_and_keeps_this_one(enrolled, user):
    client, secret = enrolled
    other = Client()
    at = T0 + timedelta(seconds=120)
    with time_machine.travel(at, tick=False):
        sign_in_password(other)
        other.post("/account/2fa/authenticate/", {"code": code_for(secret, at)})
        assert other.get("/account/history/").status_code == 200
        key_before = client.session.session_key
        client.post("/account/reauthenticate/", {"password": PASSWORD})
        changed = client.post(
            "/account/password/change/",
            {"oldpassword": PASSWORD, "password1": "a brand new passphrase 7",
             "password2": "a brand new passphrase 7"},
        )
        assert changed.status_code == 302, changed.content[:400]
        assert other.get("/account/history/").status_code == 302
        assert client.get("/account/history/").status_code == 200
        assert client.session.session_key  # still signed in here
    assert key_before
    assert Event.objects.filter(kind="account.password.changed", subject_username="carol").exists()
