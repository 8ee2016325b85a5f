"""WAL checkpoints run by a worker's thread, off the request path (bastion.sqlite.checkpoints),
on real SQLite files."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bastion.sqlite import checkpoints

DEADLINE = 30.0  # seconds a background effect may take on a loaded machine (never reached)


def _writer(path: Path) -> sqlite3.Connection:
    """A connection like a request's, except that it never checkpoints by itself."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    return connection


def _pending(path: Path) -> int:
    """Frames of the log that are not in the database file yet, asked without copying any:
    a second process's view of the log (its wal-index header and checkpoint record)."""
    probe = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        # A read transaction makes the probe map the log; the log's frames and those copied
        # back come from the shared wal-index, which SQLite documents (walformat.html).
        probe.execute("BEGIN")
        probe.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        probe.execute("COMMIT")
    finally:
        probe.close()
    shm = Path(f"{path}-shm").read_bytes()[:136]
    frames = int.from_bytes(shm[16:20], sys.byteorder)  # mxFrame of the first header copy
    copied = int.from_bytes(shm[96:100], sys.byteorder)  # nBackfill
    return frames - copied


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[Path, sqlite3.Connection]]:
    path = tmp_path / "db.sqlite3"
    writer = _writer(path)
    writer.execute("CREATE TABLE t (v BLOB)")
    yield path, writer
    writer.close()


def _wait_for(condition: Callable[[], bool]) -> None:
    ends = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < ends, "the background checkpoint never happened"
        time.sleep(0.02)


def test_a_look_checkpoints_only_a_changed_log(database) -> None:
    path, writer = database
    checkpointer = checkpoints.Checkpointer(str(path))
    try:
        writer.execute("INSERT INTO t VALUES (zeroblob(50000))")
        assert _pending(path) > 0
        busy, frames, copied = checkpointer.run_once()
        assert busy == 0 and frames > 0 and copied == frames
        assert _pending(path) == 0
        # One more look finds the log as it was left (a commit of the same clock tick and
        # size would have been copied by it), then the log has settled: no more checkpoints.
        assert checkpointer.run_once() == (0, frames, frames)
        assert checkpointer.run_once() is None
        assert checkpointer.run_once() is None
        writer.execute("INSERT INTO t VALUES (zeroblob(50000))")
        assert _pending(path) > 0
        assert checkpointer.run_once() is not None
        assert _pending(path) == 0
    finally:
        checkpointer.stop()


def test_no_log_is_nothing_to_do(tmp_path: Path) -> None:
    checkpointer = checkpoints.Checkpointer(str(tmp_path / "never-written.sqlite3"))
    assert checkpointer.run_once() is None
    assert not (tmp_path / "never-written.sqlite3").exists()  # the look made no database


def test_a_reader_is_never_waited_for_and_the_rest_is_copied_at_the_next_look(database) -> None:
    """PASSIVE: the frames an open reader still needs stay in the log; once it is gone, the
    next look copies them, though the log did not change meanwhile."""
    path, writer = database
    writer.execute("INSERT INTO t VALUES (zeroblob(50000))")
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (1,)  # holds this snapshot
    writer.execute("INSERT INTO t VALUES (zeroblob(50000))")  # frames the reader cannot see
    checkpointer = checkpoints.Checkpointer(str(path))
    try:
        started = time.monotonic()
        busy, frames, copied = checkpointer.run_once()
        assert 0 < copied < frames  # up to the reader's snapshot only
        assert time.monotonic() - started < DEADLINE  # it returned; the reader still reads
        assert reader.execute("SELECT count(*) FROM t").fetchone() == (1,)
        reader.execute("COMMIT")
        reader.close()
        result = checkpointer.run_once()
        assert result is not None and result[1] == result[2]
        assert _pending(path) == 0
        checkpointer.run_once()
        assert checkpointer.run_once() is None
    finally:
        checkpointer.stop()


def test_the_thread_checkpoints_what_requests_commit(database) -> None:
    """Each commit lands right after the look that copied the last one back: it starts the log
    over, often within the same clock tick and at the same size as the log that look read.
    Fifty in a row hit that window (a checker of time and size alone missed one in ~10)."""
    path, writer = database
    checkpointer = checkpoints.Checkpointer(str(path), interval=0.002)
    checkpointer.start()
    try:
        for _ in range(50):
            writer.execute("INSERT INTO t VALUES (zeroblob(50000))")
            _wait_for(lambda: _pending(path) == 0)
    finally:
        checkpointer.stop()
    assert path.stat().st_size > 50 * 50000  # the rows are in the database file itself


def test_a_failing_checkpoint_is_logged_once_and_retried(tmp_path: Path, caplog) -> None:
    """A database that cannot be opened (here: a directory where the file should be) is a
    warning, once, and the thread carries on; it checkpoints once the database is back."""
    path = tmp_path / "db.sqlite3"
    path.mkdir()
    Path(f"{path}-wal").write_bytes(b"")  # a log, so that the look tries to open the database
    checkpointer = checkpoints.Checkpointer(str(path), interval=0.01)
    caplog.set_level(logging.WARNING, logger=checkpoints.__name__)
    checkpointer.start()
    try:
        _wait_for(lambda: len(caplog.records) >= 1)
        for _ in range(5):  # more failing looks: the log changes before each
            Path(f"{path}-wal").write_bytes(os.urandom(8))
            time.sleep(0.05)
        assert [r.getMessage().split(":")[0] for r in caplog.records] == [
            "background WAL checkpoint failed (will retry)"
        ]
        path.rmdir()
        Path(f"{path}-wal").unlink()
        writer = _writer(path)
        writer.execute("CREATE TABLE t (v BLOB)")
        writer.execute("INSERT INTO t VALUES (zeroblob(50000))")
        _wait_for(lambda: _pending(path) == 0)
        writer.close()
    finally:
        checkpointer.stop()


def test_request_connections_leave_checkpoints_to_the_thread(db) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_autocheckpoint")
        assert cursor.fetchone() == (checkpoints.SAFETY_NET_PAGES,)
    assert checkpoints.SAFETY_NET_PAGES > 1000  # above SQLite's default, or nothing changed


def test_each_worker_starts_its_checkpointer(tmp_path: Path) -> None:
    """``bastion.wsgi`` (what each gunicorn worker loads) starts the thread on the embedded
    database, once per process."""
    env = {
        **os.environ,
        "BASTION_DATA_DIR": str(tmp_path / "data"),
        "BASTION_BASE_URL": "http://127.0.0.1:9",
    }
    env.pop("BASTION_DATABASE_URL", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    script = (
        "import threading\n"
        "import bastion.wsgi\n"
        "from bastion.sqlite import checkpoints\n"
        "names = [t.name for t in threading.enumerate()]\n"
        "assert names.count('bastion-wal-checkpoint') == 1, names\n"
        "assert checkpoints.start('other') is checkpoints.start('another')\n"
        "print(checkpoints.start('x').path)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert os.path.realpath(out.stdout.strip()) == str(tmp_path / "data" / "bastion.sqlite3")
