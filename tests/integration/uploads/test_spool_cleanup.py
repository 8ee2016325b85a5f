"""Spool files are named after their process; ``bastion serve`` removes those of processes
that are gone (a worker killed mid-upload) and leaves every other file alone."""

from __future__ import annotations

import os
import subprocess
import sys

from bastion.uploads.spool import remove_abandoned_spool_files, spool_prefix


def test_only_files_of_dead_processes_are_removed(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: its process id names no process now
    abandoned = tmp_path / (spool_prefix(gone.pid) + "x1y2")
    mine = tmp_path / (spool_prefix() + "a1b2")
    other = tmp_path / "upload-notapid-zz"
    unrelated = tmp_path / "something-else"
    for path in (abandoned, mine, other, unrelated):
        path.write_bytes(b"partial body")
    assert spool_prefix() == f"upload-{os.getpid()}-"

    assert remove_abandoned_spool_files(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [mine.name, other.name, unrelated.name]
    )
