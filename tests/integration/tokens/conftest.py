"""Fixtures for the token pages: a publisher with a password and a TOTP app, signed in through
the real two-step sign-in at a frozen time (time-machine), so TOTP codes can be computed."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import time_machine
from allauth.mfa.models import Authenticator
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.twofactor.hotp import HOTP
from django.test import Client

from bastion.accounts import mfa
from bastion.accounts.models import User
from bastion.accounts.services import create_user
from bastion.actors import Actor

PASSWORD = "correct horse battery staple 9"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # 20 bytes, like the real ones
T0 = datetime(2026, 12, 2, 12, 0, 5, tzinfo=UTC)  # 5 s into a 30 s step


def code_for(secret: str, at: datetime, offset: int = 0) -> str:
    step = int(at.timestamp()) // 30 + offset
    return HOTP(base64.b32decode(secret), 6, hashes.SHA1()).generate(step).decode()


def make_publisher(username: str, *, with_totp: bool = True) -> User:
    user = create_user(
        actor=Actor.operator(),
        username=username,
        email=f"{username}@example.com",
        password=PASSWORD,
        email_verified=True,
    )
    if with_totp:
        Authenticator.objects.create(
            user=user,
            type=Authenticator.Type.TOTP,
            data={"secret": mfa.encrypt_secret(TOTP_SECRET)},
        )
    return user


def sign_in(client: Client, username: str, *, at: datetime) -> None:
    """Password, then the TOTP code of the step ``at`` falls in."""
    first = client.post("/account/login/", {"login": username, "password": PASSWORD})
    assert first.status_code == 302 and first["Location"].startswith("/account/2fa/authenticate/")
    second = client.post("/account/2fa/authenticate/", {"code": code_for(TOTP_SECRET, at)})
    assert second.status_code == 302, second.content[:500]
    assert client.session.get("_auth_user_id")


def reauthenticate(client: Client) -> None:
    response = client.post("/account/reauthenticate/", {"password": PASSWORD})
    assert response.status_code == 302, response.content[:500]


@pytest.fixture
def frozen() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def publisher(db) -> User:
    return make_publisher("dana")


@pytest.fixture
def signed_in(publisher: User, frozen: time_machine.Coordinates) -> Client:
    """dana, signed in with password and TOTP (no reauthentication yet)."""
    client = Client()
    sign_in(client, publisher.username, at=T0)
    return client


@pytest.fixture
def reauthenticated(signed_in: Client) -> Client:
    reauthenticate(signed_in)
    return signed_in
