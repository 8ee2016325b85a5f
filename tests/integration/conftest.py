"""Fixtures for integration tests: the Django test client against a real (SQLite) database
and the real local blob store under the test data directory."""

from __future__ import annotations

import base64
import dataclasses
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from bastion.accounts.services import create_user
from bastion.actors import Actor
from bastion.tokens.services import create_token


def basic(token: str, username: str = "__token__") -> str:
    return "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode()


@pytest.fixture(autouse=True)
def _clean_data_dir():
    """Each test starts with an empty file store and spool."""
    for sub in ("files", "tmp"):
        shutil.rmtree(settings.BASTION.data_dir / sub, ignore_errors=True)
    yield


def require_redis() -> None:
    """Skip the calling test when the machine's Redis (127.0.0.1:6379) does not answer; in CI,
    which requires it, fail instead."""
    import os

    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
    except redis.RedisError:
        if os.environ.get("CI") == "true":
            pytest.fail("Redis is not reachable at 127.0.0.1:6379; CI requires it")
        pytest.skip("Redis is not reachable at 127.0.0.1:6379")


def stored_blobs() -> list[Path]:
    root = settings.BASTION.data_dir / "files"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def spooled_files() -> list[Path]:
    root = settings.BASTION.spool_dir
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def without_2fa_requirement():
    """BASTION_REQUIRE_2FA=false, for tests about something else than the 2FA policy."""
    from django.test import override_settings

    with override_settings(BASTION=dataclasses.replace(settings.BASTION, require_2fa=False)):
        yield


@pytest.fixture
def alice(db):
    return create_user(
        actor=Actor.operator(), username="alice", email="alice@example.com", password=None
    )


@pytest.fixture
def bob(db):
    return create_user(
        actor=Actor.operator(), username="bob", email="bob@example.com", password=None
    )


@pytest.fixture
def make_token():
    def make(user, *, projects=(), expires_in=None, now=None, name=None):
        _row, secret = create_token(
            actor=Actor.operator(),
            user=user,
            name=name,
            project_names=projects,
            expires_in=expires_in,
            now=now or timezone.now(),
        )
        return secret

    return make


@pytest.fixture
def alice_token(alice, make_token):
    return make_token(alice, name="alice-all")


__all__ = ["basic", "spooled_files", "stored_blobs", "timedelta"]
