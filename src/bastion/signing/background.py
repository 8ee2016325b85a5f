"""The worker's background signer: uploads are signed shortly after they return, in rounds.

An upload only advances the index serial; after its commit it calls ``soon()``, which asks this
worker's signer thread for a round (``services.sign_changes``) ``BASTION_TUF_SIGN_DELAY`` after
the last upload, and at most five times that after the first one waiting, so a burst of uploads
costs one snapshot and one timestamp. Every worker of every node has its own; a round that
finds nothing unsigned (another signed first) takes no lock. Enabled by ``bastion serve``
(``bastion.wsgi``); elsewhere (tests, the command line) ``soon`` does nothing and the next read
of ``timestamp.json`` signs.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)

MAX_WAIT_FACTOR = 5  # a round at most this many delays after the first upload waiting


class Signer:
    def __init__(self, delay: float) -> None:
        self.quiet = delay
        self.max_wait = delay * MAX_WAIT_FACTOR
        self._cond = threading.Condition()
        self._due: float | None = None
        self._first: float | None = None
        self._thread: threading.Thread | None = None

    def soon(self) -> None:
        with self._cond:
            now = time.monotonic()
            first_waiting = self._first is None
            if first_waiting:
                self._first = now
            self._due = min(now + self.quiet, self._first + self.max_wait)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="bastion-tuf-signer", daemon=True
                )
                self._thread.start()
            if first_waiting:
                # The thread waits for a first upload without a timeout. Later ones only move
                # the round later, which it sees when its timed wait ends: waking it for each
                # would cost every upload a switch to this thread and back.
                self._cond.notify()

    def _next_round(self) -> None:
        with self._cond:
            while True:
                if self._due is None:
                    self._cond.wait()
                    continue
                remaining = self._due - time.monotonic()
                if remaining <= 0:
                    self._due = self._first = None
                    return
                self._cond.wait(remaining)

    def _run(self) -> None:
        while True:
            self._next_round()
            sign_round()


def sign_round() -> None:
    """One round in this thread, on its own database connection (closed after)."""
    from django.db import connection

    try:
        from bastion.signing.queries import unsigned_changes

        if unsigned_changes():
            from bastion.signing import services

            if services.initialized():  # no lock taken before `bastion tuf init`
                services.sign_changes()
    except Exception as exc:  # noqa: BLE001 - the next upload, timestamp read or refresh retries
        from bastion.outages import report_background

        report_background(exc, task="signing the latest uploads", logger=log)
    finally:
        connection.close()


_signer: Signer | None = None


def enable() -> None:
    """Sign in the background in this process from now on (``bastion serve``'s workers)."""
    from django.conf import settings

    global _signer
    if _signer is None:
        _signer = Signer(settings.BASTION.tuf.sign_delay.total_seconds())


def soon() -> None:
    """An upload committed: a round shortly (a no-op unless ``enable``d)."""
    if _signer is not None:
        _signer.soon()
