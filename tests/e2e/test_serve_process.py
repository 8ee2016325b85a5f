"""``bastion serve``'s process tree: a master without the application, and the TUF refresh.

``bastion serve`` prepares with Django loaded, then becomes (same pid) ``python -m
bastion.server``: gunicorn's arbiter alone, which runs each periodic TUF refresh as a process
of its own. So the master's memory is a small fraction of a worker's, and the refresh still
re-signs what is due.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import requests

from tests.e2e._support import SERVER_STOP_GRACE, LiveServer, clean_environ, serve
from tests.processes import free_port, stop_process_group


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:  # gone meanwhile
        return []


def _timestamp_version(base_url: str) -> int:
    body = requests.get(base_url + "/tuf/timestamp.json", timeout=10).content
    return int(json.loads(body)["signed"]["version"])


def test_the_master_is_slim_and_refreshes_the_timestamp(tmp_path: Path) -> None:
    port = free_port()
    env = clean_environ()
    base_url = f"http://127.0.0.1:{port}"
    env.update(
        {
            "BASTION_DATA_DIR": str(tmp_path / "data"),
            "BASTION_BASE_URL": base_url,
            # re-signed at half its lifetime: every round after 2 s finds the timestamp due
            "BASTION_TUF_TIMESTAMP_EXPIRY": "4s",
            "BASTION_TUF_REFRESH_INTERVAL": "1s",
        }
    )
    live = LiveServer(
        backend="sqlite",
        base_url=base_url,
        data_dir=tmp_path / "data",
        env=env,
        stderr_path=tmp_path / "server.stderr.log",
    )
    process = serve(live, workers=2, timeout=60)
    try:
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert b"bastion.server" in cmdline, cmdline  # the same pid, now the slim master
        # The workers are the master's forks (its command line); the periodic refresh's
        # short-lived `python -m bastion.signing.refresher` is a child too, not a worker.
        workers = [
            pid for pid in _children(process.pid) if _cmdline(pid) == cmdline and _rss_kib(pid) > 0
        ]
        assert len(workers) >= 2
        master = _rss_kib(process.pid)
        # A master with the application loaded weighs about as much as a worker (~60-80 MB).
        assert master < 45 * 1024, f"master RSS {master} KiB"
        assert master < min(_rss_kib(pid) for pid in workers) * 0.7

        first = _timestamp_version(base_url)
        deadline = time.monotonic() + 30
        while _timestamp_version(base_url) <= first:
            assert time.monotonic() < deadline, "the periodic refresh never re-signed"
            assert process.poll() is None, live.server_log()[-3000:]
            time.sleep(0.5)
        assert "Traceback" not in live.server_log()
    finally:
        stop_process_group(process, grace=SERVER_STOP_GRACE)
        live.close()
