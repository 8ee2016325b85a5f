"""Constant-time comparison for secrets."""

from __future__ import annotations

import hmac


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    """Compare two secrets without leaking where they differ.

    ``str`` values are compared as their UTF-8 bytes (``hmac.compare_digest`` only accepts ASCII
    ``str``), so any mix of ``str`` and ``bytes`` works.
    """
    a_bytes = a.encode("utf-8") if isinstance(a, str) else a
    b_bytes = b.encode("utf-8") if isinstance(b, str) else b
    return hmac.compare_digest(a_bytes, b_bytes)
