"""`bastion audit verify` on a real database, tampered with directly in SQL (SQLite and PostgreSQL).

The commands run as subprocesses with their own configuration, as an operator would run them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.pg import temporary_database

BASTION = str(Path(sys.executable).parent / "bastion")


class Deployment:
    def __init__(self, env: dict[str, str], execute: Callable[[str, tuple], list]) -> None:
        self.env = env
        self.execute = execute

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [BASTION, *args], env=self.env, capture_output=True, text=True, timeout=120
        )


def _base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BASTION_", "DJANGO_"))}
    env["BASTION_DATA_DIR"] = str(tmp_path / "data")
    env["BASTION_SECRET_KEY"] = "audit-test-secret-" + "k" * 32
    return env


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request, tmp_path) -> Iterator[Deployment]:
    env = _base_env(tmp_path)
    if request.param == "sqlite":
        path = tmp_path / "data" / "bastion.sqlite3"

        def execute(sql: str, params: tuple = ()) -> list:
            with sqlite3.connect(path) as connection:
                return connection.execute(sql.replace("%s", "?"), params).fetchall()

        yield Deployment(env, execute)
        return
    import psycopg

    with temporary_database("bastion_audit") as url:
        env["BASTION_DATABASE_URL"] = url

        def execute(sql: str, params: tuple = ()) -> list:
            with psycopg.connect(url, autocommit=True) as connection:
                cursor = connection.execute(sql, params)
                return cursor.fetchall() if cursor.description else []

        yield Deployment(env, execute)


def populate(deployment: Deployment) -> int:
    assert deployment.run("migrate").returncode == 0
    for name in ("alice", "bob", "carol"):
        result = deployment.run("user", "create", name, "--email", f"{name}@example.com")
        assert result.returncode == 0, result.stderr
        result = deployment.run("token", "create", name, "--project", "demo", "--name", "ci")
        assert result.returncode == 0, result.stderr
    result = deployment.run("audit", "verify")
    assert result.returncode == 0, result.stderr
    count = deployment.execute("SELECT COUNT(*) FROM audit_event")[0][0]
    assert f"intact: {count} events" in result.stdout
    return count


def test_edited_row(deployment):
    populate(deployment)
    deployment.execute("UPDATE audit_event SET actor_username = %s WHERE seq = %s", ("mallory", 4))
    result = deployment.run("audit", "verify")
    assert result.returncode == 1
    assert "event 4:" in result.stderr and "edited" in result.stderr


def test_removed_row(deployment):
    populate(deployment)
    deployment.execute("DELETE FROM audit_event WHERE seq = %s", (5,))
    result = deployment.run("audit", "verify")
    assert result.returncode == 1
    assert "event 5:" in result.stderr and "missing" in result.stderr


def test_removed_tail(deployment):
    count = populate(deployment)
    deployment.execute("DELETE FROM audit_event WHERE seq = %s", (count,))
    result = deployment.run("audit", "verify")
    assert result.returncode == 1
    assert f"event {count}:" in result.stderr


def test_inserted_row(deployment):
    count = populate(deployment)
    # a forged event appended after the last one, claiming a plausible predecessor hash
    deployment.execute(
        "INSERT INTO audit_event (seq, kind, created, actor_username, credential, token_id, "
        "token_name, ip_address, ip_salt, ip_coarse, ip_commitment, user_agent, subject_username, "
        "project_name, payload, prev_hash, hash) SELECT seq + 1, 'file.uploaded', created, "
        "'mallory', credential, token_id, token_name, ip_address, ip_salt, ip_coarse, "
        "ip_commitment, user_agent, subject_username, project_name, payload, hash, hash "
        "FROM audit_event WHERE seq = %s",
        (count,),
    )
    result = deployment.run("audit", "verify")
    assert result.returncode == 1
    assert f"event {count + 1}:" in result.stderr


def test_export_since_and_format(deployment):
    populate(deployment)
    result = deployment.run("audit", "export")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    assert {line["kind"] for line in lines} >= {"account.created", "token.created"}
    later = deployment.run("audit", "export", "--since", "2999-01-01T00:00:00Z")
    assert later.returncode == 0 and later.stdout == ""
    bad = deployment.run("audit", "export", "--since", "yesterday")
    assert bad.returncode == 2 and "invalid --since" in bad.stderr
