"""``bastion serve``'s periodic ``refresh``, from its (Django-free) master process.

Every interval the master runs one round as a short-lived process of its own
(``python -m bastion.signing.refresher``), so the master never loads the application. Several
nodes may each run one: ``refresh`` takes the index lock and only re-signs what lags or is due,
so the second to run finds nothing to do. ``bastion tuf refresh`` from cron does the same.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

log = logging.getLogger(__name__)

ROUND_TIMEOUT = 600.0  # a round that hangs (a KMS that never answers) is killed; the next retries


def start(interval: float) -> threading.Thread | None:
    """A daemon thread running one refresh round every ``interval`` seconds (0: never)."""
    if interval <= 0:
        return None
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            try:
                done = subprocess.run(
                    [sys.executable, "-m", "bastion.signing.refresher"],
                    stdin=subprocess.DEVNULL,
                    timeout=ROUND_TIMEOUT,
                    check=False,
                )
                if done.returncode != 0:
                    log.warning("TUF refresh round exited with %s", done.returncode)
            except (OSError, subprocess.SubprocessError) as exc:
                log.warning("TUF refresh round failed: %s", exc)

    thread = threading.Thread(target=loop, name="bastion-tuf-refresh", daemon=True)
    thread.start()
    return thread


def refresh_once() -> int:
    """One round, quietly: nothing before ``bastion tuf init``; warnings logged. Exit status."""
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bastion.settings")
    import django

    django.setup()
    from bastion.signing import services

    try:
        if services.initialized():
            report = services.refresh()
            for warning in report.warnings:
                log.warning("TUF: %s", warning)
    except Exception as exc:  # noqa: BLE001 - logged; the next round retries
        from bastion.outages import report_background

        report_background(exc, task="TUF refresh", logger=log)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(refresh_once())
