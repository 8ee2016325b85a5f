"""``bastion serve``'s periodic ``refresh``: one daemon thread in the serving process.

Several nodes may each run one: ``refresh`` takes the index lock and only re-signs what lags or
is due, so the second to run finds nothing to do. ``bastion tuf refresh`` from cron does the same.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


def start() -> threading.Thread | None:
    from django.conf import settings

    interval = settings.BASTION.tuf.refresh_interval.total_seconds()
    if interval <= 0:
        return None
    stop = threading.Event()

    def loop() -> None:
        from django.db import close_old_connections, connection

        from bastion.signing import services

        while not stop.wait(interval):
            try:
                if services.initialized():
                    report = services.refresh()
                    for warning in report.warnings:
                        log.warning("TUF: %s", warning)
            except Exception:  # noqa: BLE001 - logged; the next round retries
                log.exception("TUF refresh failed")
            finally:
                close_old_connections()
                connection.close()

    thread = threading.Thread(target=loop, name="bastion-tuf-refresh", daemon=True)
    thread.start()
    return thread
