"""Limits of the upload API: new projects per user and per address, failed credentials per
address, uploads per token (issue 13; PyPI's rate-limit table).

Fixed windows, counted in the database (one UPSERT ... RETURNING per hit, atomic on SQLite and
PostgreSQL) or in Redis (INCR) when BASTION_REDIS_URL is set, so every process and node shares
one count, and a limit of N admits exactly N per window, also under concurrent requests.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, connection

from bastion import rows
from bastion.config import rate_seconds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    name: str  # "project-create", "project-create-ip", "failed-auth", "upload"
    count: int
    seconds: int

    @classmethod
    def named(cls, name: str, rate: str) -> Limit:
        count, seconds = rate_seconds(rate)
        return cls(name=name, count=count, seconds=seconds)

    def window(self, now: datetime) -> int:
        stamp = int(now.timestamp())
        return stamp - stamp % self.seconds

    def reset_after(self, now: datetime) -> int:
        """Seconds until the current window ends (at least 1)."""
        return max(1, self.window(now) + self.seconds - int(now.timestamp()))

    def headers(self, now: datetime, *, remaining: int = 0) -> dict[str, str]:
        """Retry-After, and RateLimit-Policy / RateLimit (draft-ietf-httpapi-ratelimit-headers)."""
        reset = self.reset_after(now)
        return {
            "Retry-After": str(reset),
            "RateLimit-Policy": f'"{self.name}";q={self.count};w={self.seconds}',
            "RateLimit": f'"{self.name}";r={remaining};t={reset}',
        }


class CounterStoreUnavailable(Exception):
    """The counters cannot be read or written (Redis down, database error)."""


def limits() -> dict[str, Limit]:
    config = settings.BASTION
    return {
        "project-create": Limit.named("project-create", config.project_create_limit),
        "project-create-ip": Limit.named("project-create-ip", config.project_create_ip_limit),
        "failed-auth": Limit.named("failed-auth", config.failed_auth_limit),
        "upload": Limit.named("upload", config.upload_limit),
    }


def _slot(limit: Limit, subject: str, now: datetime) -> tuple[str, int]:
    """(counter key, window start) of ``subject`` under ``limit`` now."""
    return f"{limit.name}:{subject}"[:255], limit.window(now)


def _redis_name(key: str, window: int) -> str:
    return f"bastion:rate:{key}:{window}"


def hit(limit: Limit, subject: str, now: datetime) -> int:
    """Count one more for ``subject`` in the current window; returns the new count."""
    key, window = _slot(limit, subject, now)
    try:
        if settings.BASTION.redis_url:
            return _redis_hit(key, window, limit.seconds)
        count = _database_hit(key, window)
        if count == 1:  # a key opened a new window: drop counters of windows long past
            forget_old_windows(now)
        return count
    except (DatabaseError, OSError, *_redis_errors()) as exc:
        log.warning("rate-limit counters unavailable: %s", type(exc).__name__)
        raise CounterStoreUnavailable(str(exc)) from None


def peek(limit: Limit, subject: str, now: datetime) -> int:
    """The current count for ``subject`` (0 if the store cannot be read: reads fail open)."""
    key, window = _slot(limit, subject, now)
    try:
        if settings.BASTION.redis_url:
            value = _redis().get(_redis_name(key, window))
            return int(value or 0)
        row = rows.fetch_one(
            "SELECT count FROM uploads_rate_counter WHERE key = %s AND window_start = %s",
            [key, window],
        )
        return int(row[0]) if row else 0
    except (DatabaseError, OSError, *_redis_errors()) as exc:
        log.warning("rate-limit counters unavailable: %s", type(exc).__name__)
        return 0


def first_in_window(limit: Limit, subject: str, now: datetime) -> bool:
    """True once per subject and window (to record one audit event per flood, not each hit)."""
    marker = Limit(name=f"{limit.name}-recorded", count=1, seconds=limit.seconds)
    try:
        return hit(marker, subject, now) == 1
    except CounterStoreUnavailable:
        return False


def forget_old_windows(now: datetime) -> None:
    """Delete database counters of windows long past (Redis expires its own): older than the
    longest configured window plus a day, so no current window is ever forgotten. ``hit``
    calls it whenever a key opens a new window."""
    if settings.BASTION.redis_url:
        return
    longest = max(limit.seconds for limit in limits().values())
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM uploads_rate_counter WHERE window_start < %s",
            [int(now.timestamp()) - longest - 86400],
        )


def _database_hit(key: str, window: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO uploads_rate_counter (key, window_start, count) VALUES (%s, %s, 1) "
            "ON CONFLICT (key, window_start) "
            "DO UPDATE SET count = uploads_rate_counter.count + 1 "
            "RETURNING count",
            [key, window],
        )
        row = cursor.fetchone()
    return int(row[0])


def _redis_errors() -> tuple[type[BaseException], ...]:
    """redis-py's base error, once redis-py is loaded (by ``_redis``): a worker without
    BASTION_REDIS_URL never imports it (~5 MB per worker), and then no Redis error is raised."""
    exceptions = sys.modules.get("redis.exceptions")
    return () if exceptions is None else (exceptions.RedisError,)


_clients: dict[str, object] = {}


def _redis():  # type: ignore[no-untyped-def]
    """One client (a connection pool, thread-safe) per Redis URL, with short timeouts: a Redis
    outage is a quick refusal, never a hung upload."""
    url = settings.BASTION.redis_url
    client = _clients.get(url)
    if client is None:
        import redis

        client = _clients[url] = redis.Redis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=1.0
        )
    return client


def _redis_hit(key: str, window: int, seconds: int) -> int:
    name = _redis_name(key, window)
    pipe = _redis().pipeline()
    pipe.incr(name)
    pipe.expire(name, seconds + 60)
    count, _ = pipe.execute()
    return int(count)
