"""Shared by the account tests: mail kept in memory, and users with a verified address."""

from __future__ import annotations

import pytest

from bastion.accounts.models import User
from bastion.accounts.services import create_user
from bastion.actors import Actor


@pytest.fixture(autouse=True)
def _memory_mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def verified_user(username: str, password: str) -> User:
    """An account as `bastion user create` makes it (address verified), with a password."""
    return create_user(
        actor=Actor.operator(),
        username=username,
        email=f"{username}@example.com",
        password=password,
        email_verified=True,
    )
