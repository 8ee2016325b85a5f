"""Signing work outside a request meets a database that is down: one warning line, no traceback.

A node's background round (after an upload) and ``bastion serve``'s periodic refresh run
while PostgreSQL is stopped or still recovering; that is an outage the next round retries, and
it must read like the request path's outages (one throttled line naming the dependency), not
like a bug. The database here is a real PostgreSQL URL on a port where nothing listens.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[3]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BASTION_", "DJANGO_"))}
    env["BASTION_DATA_DIR"] = str(tmp_path / "data")
    env["BASTION_SECRET_KEY"] = "outage-round-secret-" + "o" * 40
    env["BASTION_DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{free_port()}/bastion"
    env["DJANGO_SETTINGS_MODULE"] = "bastion.settings"
    return env


def _run(code: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *code],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_background_round_with_the_database_down_logs_one_line(tmp_path: Path) -> None:
    script = (
        "import django; django.setup()\n"
        "from bastion.signing.background import sign_round\n"
        "sign_round(); sign_round()\n"  # the second within the interval: not logged again
        "print('returned')\n"
    )
    done = _run(["-c", script], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "returned"
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert (
        "signing the latest uploads postponed: database unavailable: OperationalError" in (lines[0])
    )
    assert "postgres@" not in lines[0]  # the URL's user never reaches the log


def test_the_periodic_refresh_with_the_database_down_logs_one_line(tmp_path: Path) -> None:
    done = _run(["-m", "bastion.signing.refresher"], tmp_path)
    assert done.returncode == 1  # the master logs the exit status; the next round retries
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "TUF refresh postponed: database unavailable: OperationalError" in lines[0]
