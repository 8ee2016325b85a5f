"""Throw-away PostgreSQL databases for tests (server at 127.0.0.1:5432, user postgres, trust).

Where no server answers, tests that need one are skipped with a visible reason, except under
CI (CI=true), where they fail: CI must never skip them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def require_postgres() -> None:
    import psycopg

    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3):
            return
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable at 127.0.0.1:5432 ({exc.__class__.__name__})"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI requires it")
        pytest.skip(message + "; run `make test` as root to start one")


@contextmanager
def temporary_database(prefix: str = "bastion_test") -> Iterator[str]:
    """Create a database, yield its URL, drop it (closing other connections first)."""
    import psycopg

    require_postgres()
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
