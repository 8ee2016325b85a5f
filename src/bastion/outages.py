"""A dependency that is down (PostgreSQL, Redis, the blob store) answers 503, never a 500.

An error that means "the database, Redis or storage cannot be reached right now" becomes a
503 with ``Retry-After`` and a one-line ``text/plain`` reason naming the dependency, also on
the status line (twine shows it, P73); on the upload API it is an upload error like the others
(``X-Bastion-Error``, JSON for JSON clients). It is logged as one warning line without a
traceback, at most once per dependency every few seconds per process. Nothing is retried:
Django opens a fresh connection per request (``CONN_HEALTH_CHECKS``), redis-py and boto3
reconnect by themselves, so service resumes when the dependency returns.

Three places catch such an error, because Django turns every exception into a response at
each middleware layer (a middleware cannot ``try`` around the ones inside it):

* ``OutageMiddleware.process_exception``: errors raised by a view;
* ``server_error`` (``handler500``): errors raised by a middleware (sessions, authentication)
  or while building the response;
* ``OutageGuard``, the outermost WSGI layer: errors outside Django's handler, such as the
  simple-page fast path's cache look-up or Django's own ``request_started`` work.

Anything else stays a 500: a bug is not an outage.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from bastion.storage import BlobNotFound, StorageError

log = logging.getLogger(__name__)

RETRY_AFTER = 30  # seconds: a restart or a fail-over, not a maintenance window
LOG_INTERVAL = 10.0  # seconds between two warnings about the same dependency (per process)
UPLOAD_PATHS = ("/legacy",)


def _redis_errors() -> tuple[type[BaseException], ...]:
    """redis-py's connection errors, if redis-py is loaded: a worker without BASTION_REDIS_URL
    never imports it (a few MB per worker), and then no Redis error can be raised."""
    exceptions = sys.modules.get("redis.exceptions")
    if exceptions is None:
        return ()
    return (exceptions.ConnectionError, exceptions.TimeoutError)


@dataclass(frozen=True)
class Outage:
    dependency: str  # "database", "redis", "storage"
    message: str  # one line, for the status line and the body

    @property
    def code(self) -> str:
        return f"{self.dependency}.unavailable"


DATABASE = Outage("database", "The database is unavailable; retry later.")
REDIS = Outage("redis", "The cache (Redis) is unavailable; retry later.")
STORAGE = Outage("storage", "Storage is unavailable; retry later.")


def outage_of(exc: BaseException) -> Outage | None:
    """The dependency ``exc`` says is unreachable, or None when it is no outage (a bug, a
    constraint violation, a missing blob: those stay what they are)."""
    if isinstance(exc, OperationalError | InterfaceError):
        return DATABASE
    redis_errors = _redis_errors()
    if redis_errors and isinstance(exc, redis_errors):
        return REDIS
    if isinstance(exc, StorageError) and not isinstance(exc, BlobNotFound):
        return STORAGE
    return None


# --- logging: one line, no secrets, throttled -------------------------------------------------

_CREDENTIALS = re.compile(r"//[^/@\s]*@")  # user:password@ in a URL
_last_logged: dict[str, float] = {}
_suppressed: dict[str, int] = {}
_log_lock = threading.Lock()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return _CREDENTIALS.sub("//***@", text)[:200]


def _where(path: str) -> str:
    """The path's first segment only: later ones may carry secrets (reset and e-mail keys)."""
    first = path.lstrip("/").split("/", 1)[0]
    return f"/{first}/..." if "/" in path.lstrip("/") else f"/{first}"


def _throttled(dependency: str) -> str | None:
    """None if a warning about ``dependency`` was logged less than LOG_INTERVAL ago (counted),
    else the suffix telling how many were not logged since the last one."""
    now = time.monotonic()
    with _log_lock:
        last = _last_logged.get(dependency)
        if last is not None and now - last < LOG_INTERVAL:
            _suppressed[dependency] = _suppressed.get(dependency, 0) + 1
            return None
        _last_logged[dependency] = now
        skipped = _suppressed.pop(dependency, 0)
    return f" (and {skipped} more since the last report)" if skipped else ""


def report(outage: Outage, exc: BaseException, *, method: str, path: str) -> None:
    """One warning line per dependency every LOG_INTERVAL seconds (with how many were not
    logged meanwhile): an outage under load must not flood the log."""
    more = _throttled(outage.dependency)
    if more is None:
        return
    log.warning(
        "503 for %s %s: %s unavailable: %s: %s%s",
        method,
        _where(path),
        outage.dependency,
        type(exc).__name__,
        _first_line(exc),
        more,
    )


def report_background(exc: Exception, *, task: str, logger: logging.Logger) -> None:
    """A failure of work outside a request (a signing round, a refresh), which the next round
    retries: an outage is an expected state, one throttled line naming the dependency, like a
    request's; anything else is a bug, logged with its traceback on ``logger``."""
    outage = outage_of(exc)
    if outage is None:
        logger.exception("%s failed; the next round retries", task)
        return
    more = _throttled(outage.dependency)
    if more is None:
        return
    log.warning(
        "%s postponed: %s unavailable: %s: %s%s",
        task,
        outage.dependency,
        type(exc).__name__,
        _first_line(exc),
        more,
    )


# --- answers ---------------------------------------------------------------------------------


def _body(outage: Outage) -> bytes:
    return f"503 {outage.message}\n".encode()


def _headers(outage: Outage) -> dict[str, str]:
    return {
        "Retry-After": str(RETRY_AFTER),
        "Cache-Control": "no-store",
        "X-Bastion-Error": outage.code,
    }


def outage_response(request: HttpRequest, outage: Outage) -> HttpResponse:
    if request.path_info.startswith(UPLOAD_PATHS):
        # The upload API's own error format: reason phrase, JSON for JSON clients (uv).
        from bastion.uploads.errors import UploadError
        from bastion.uploads.views import error_response

        error = UploadError(503, outage.code, outage.message, headers=_headers(outage))
        return error_response(request, error)
    body = _body(outage)
    response = HttpResponse(
        body, status=503, content_type="text/plain; charset=utf-8", headers=_headers(outage)
    )
    response.reason_phrase = outage.message
    response["Content-Length"] = str(len(body))
    return response


def _answer(request: HttpRequest, exc: BaseException) -> HttpResponse | None:
    outage = outage_of(exc)
    if outage is None:
        return None
    report(outage, exc, method=request.method or "GET", path=request.path_info)
    response = outage_response(request, outage)
    # Logged above, once: keep Django's "Internal Server Error" traceback out of the log.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


class OutageMiddleware:
    """Right after ``HostCheckMiddleware``: a view's outage error becomes the 503."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return _answer(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: an outage error raised outside a view (a middleware: sessions,
    authentication, the second-factor check) is a 503 too; anything else is a plain 500."""
    exc = sys.exc_info()[1]
    if exc is not None and (answer := _answer(request, exc)) is not None:
        return answer
    body = b"500 Internal Server Error\n"
    return HttpResponse(body, status=500, content_type="text/plain; charset=utf-8")


# --- the outermost WSGI layer ----------------------------------------------------------------

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class OutageGuard:
    """Wraps the whole WSGI application (the fast path in front of Django): an outage error
    that escapes it is a 503, not gunicorn's 500. An error while the body streams, after the
    status line was sent, cannot be answered any more; gunicorn closes that connection."""

    def __init__(self, application: WSGIApp) -> None:
        self.application = application

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        try:
            return self.application(environ, start_response)
        except Exception as exc:
            outage = outage_of(exc)
            if outage is None:
                raise
            report(
                outage,
                exc,
                method=str(environ.get("REQUEST_METHOD", "GET")),
                path=str(environ.get("PATH_INFO", "")),
            )
            _drop_broken_connections()
            body = _body(outage)
            headers = [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
                *_headers(outage).items(),
            ]
            start_response(f"503 {outage.message}", headers, sys.exc_info())
            return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]


def _drop_broken_connections() -> None:
    """Close database connections an error left unusable, so the next request reconnects."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        try:
            connection.close_if_unusable_or_obsolete()
        except Exception:  # noqa: BLE001 - a dead connection may fail to close; gone anyway
            pass


__all__ = [
    "DATABASE",
    "REDIS",
    "STORAGE",
    "Outage",
    "OutageGuard",
    "OutageMiddleware",
    "outage_of",
    "report_background",
    "outage_response",
    "server_error",
]
