"""An identical re-upload is 200 whatever it races with; other content under a used name is 400.

The rival upload is committed deliberately in every window between two database reads of the
retry (``race_driver``), on SQLite and PostgreSQL, so a duplicate decision made on two reads
that a concurrent commit can separate fails every time, not now and then.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pg import temporary_database

ROOT = Path(__file__).resolve().parents[3]
# More windows than an upload has reads outside a transaction: the last rounds do not fire.
ROUNDS = 16


def _run(tmp_path: Path, backend: str, mode: str) -> list[dict[str, object]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BASTION_", "DJANGO_"))}
    env["BASTION_DATA_DIR"] = str(tmp_path / "data")
    env["BASTION_SECRET_KEY"] = "race-test-secret-" + "r" * 40

    def run() -> list[dict[str, object]]:
        done = subprocess.run(
            [sys.executable, "-m", "tests.integration.uploads.race_driver", str(ROUNDS), mode],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]

    if backend == "sqlite":
        return run()
    with temporary_database("bastion_race") as url:
        env["BASTION_DATABASE_URL"] = url
        return run()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_identical_retry_is_200_in_every_window(tmp_path, backend):
    rounds = _run(tmp_path, backend, "identical")
    assert len(rounds) == ROUNDS
    fired = [r for r in rounds if r["fired"]]
    # The rival committed between the retry's reads several times over (token, project,
    # file name, content, reserved names ...), and at least once the retry had not seen it.
    assert len(fired) >= 4, rounds
    assert not rounds[-1]["fired"], "raise ROUNDS: the last window was not reached"
    for r in rounds:
        assert r["retry"] == 200, r
        if r["fired"]:
            assert r["rival"] == 200, r


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_other_content_under_a_used_name_is_always_400(tmp_path, backend):
    rounds = _run(tmp_path, backend, "different")
    for r in rounds:
        if not r["fired"]:
            continue
        # Exactly one of the two is stored; the other is refused as a clash, never a 500.
        assert sorted([r["rival"], r["retry"]]) == [200, 400], r
        refused = r["retry_reason"] if r["retry"] == 400 else r["rival_reason"]
        assert refused.startswith("File already exists"), r
