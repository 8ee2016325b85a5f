"""WAL checkpoints run by a thread of the worker, not by the request whose commit crossed the line.

In WAL mode, SQLite copies the log back into the database file (a checkpoint) as part of the
commit that makes the log reach ``wal_autocheckpoint`` pages (1,000 by default). An upload wrote
about 38 pages (33 since fewer columns are indexed), so one upload in ~25 paid for a checkpoint:
~4 ms in its answer (measured in process, ``bench/upload_profile.py``), ~0.3 ms on average over
every upload.

With ``start()`` (called by ``bastion.wsgi`` in each worker), a daemon thread looks at the log
every ``INTERVAL`` seconds and, when it changed, runs a PASSIVE checkpoint on a connection of
its own: it takes no lock that a reader or a writer waits for, and copies what no reader still
needs (the rest in its next turn). Request connections keep ``SAFETY_NET_PAGES`` as their own
``wal_autocheckpoint`` (``bastion.settings``), far above what the thread leaves behind, so the
log is still bounded if the thread cannot keep up or is not running (the command line, tests).

With ``synchronous=NORMAL``, a checkpoint is also when the log is synced to disk: commits now
reach it within about ``INTERVAL`` (unless a reader holds them back), where before they could
wait in the log until 1,000 pages had gathered.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading

log = logging.getLogger(__name__)

INTERVAL = 0.5  # seconds between looks at the log
SAFETY_NET_PAGES = 20_000  # ~80 MB of log: a request checkpoints only beyond this

# The log's modification time, size and header: a commit appends frames (a larger file) or,
# once everything was copied back, starts the log over with a new header (new salts).
_Signature = tuple[int, int, bytes]
_HEADER = 32  # bytes of the log's header (sqlite.org/fileformat2.html, "WAL File Format")


class Checkpointer:
    """Checkpoints the database at ``path`` when its log changed since the last look."""

    def __init__(self, path: str, interval: float = INTERVAL) -> None:
        self.path = path
        self.interval = interval
        self._wal = path + "-wal"
        self._previous: _Signature | None = None  # as the last look found the log
        self._settled: _Signature | None = None  # as two looks in a row found it, all copied
        self._connection: sqlite3.Connection | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def run_once(self) -> tuple[int, int, int] | None:
        """One look: None when the log has settled (or is absent); otherwise the checkpoint's
        (busy, frames in the log, frames checkpointed), as ``PRAGMA wal_checkpoint`` says.

        The log has settled when a look finds it as the previous look left it, all copied
        back: a commit whose frames landed while the previous look ran, in the same clock tick
        and at the same size, is copied by the next one."""
        signature = self._signature()
        if signature is None or signature == self._settled:
            return None
        if self._connection is None:
            # Autocommit (no transaction of its own); never waits for a lock (timeout 0).
            self._connection = sqlite3.connect(
                self.path, timeout=0, isolation_level=None, check_same_thread=False
            )
        row = self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        busy, frames, copied = (int(value) for value in row)
        # A reader that still needed some frames, or another checkpoint running: not settled.
        complete = not busy and copied == frames
        self._settled = signature if complete and signature == self._previous else None
        self._previous = signature
        return busy, frames, copied

    def _signature(self) -> _Signature | None:
        try:
            with open(self._wal, "rb") as wal:
                header = wal.read(_HEADER)
                stat = os.fstat(wal.fileno())
        except FileNotFoundError:  # nothing written since the last connection closed
            return None
        return stat.st_mtime_ns, stat.st_size, header

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="bastion-wal-checkpoint", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._disconnect()

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                done = self.run_once()
            except (sqlite3.Error, OSError) as exc:
                # Requests still checkpoint at SAFETY_NET_PAGES: logged once per failing spell,
                # retried at every look.
                if not self._failing:
                    log.warning("background WAL checkpoint failed (will retry): %s", exc)
                self._failing = True
                self._previous = None
                self._disconnect()
            else:
                if done is not None:
                    self._failing = False


_started: dict[int, Checkpointer] = {}  # by process id: a forked child starts its own
_lock = threading.Lock()


def start(path: str) -> Checkpointer:
    """This process's checkpointer of ``path``, started on the first call."""
    with _lock:
        running = _started.get(os.getpid())
        if running is None:
            running = _started[os.getpid()] = Checkpointer(path)
            running.start()
        return running
