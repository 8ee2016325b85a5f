"""``bastion.rows`` (the upload path's reads and inserts in SQL) agrees with the ORM on SQLite
and PostgreSQL: what it writes reads back through the ORM unchanged, what it reads equals the
ORM's reading (UUID keys, binary keys, JSON, aware datetimes), and a bulk insert gives each
instance its own row's key; a join and extra columns load the same way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pg import temporary_database

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_rows_agree_with_the_orm(tmp_path, backend):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BASTION_", "DJANGO_"))}
    env["BASTION_DATA_DIR"] = str(tmp_path / "data")
    env["BASTION_SECRET_KEY"] = "rows-test-secret-" + "r" * 40

    def run() -> dict[str, object]:
        done = subprocess.run(
            [sys.executable, "-m", "tests.integration.rows_driver"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.splitlines()[-1])

    if backend == "sqlite":
        result = run()
    else:
        with temporary_database("bastion_rows") as url:
            env["BASTION_DATABASE_URL"] = url
            result = run()
    assert result["vendor"] == backend
    assert result["keys_set"] is True
    assert result["written_as_read"] == []
    assert result["prepared_as_fields"] == []
    assert result["event_keys"] is True
    assert result["read_as_orm"] == {"token": True, "user": True, "release": True, "project": True}
    assert result["token_types"] == ["UUID", "datetime", True, True, True]
    if backend == "sqlite":
        assert result["without_returning"] == [True, True, True]
    assert result["missing"] is True
    assert result["joined"] == [True, True, True, True, "Owner", True, True, True]
