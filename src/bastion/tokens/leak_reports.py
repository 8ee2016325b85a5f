"""The wire format of leaked-token reports (``POST /_/token-leak/``), parsed in one place.

A report is what secret scanners send (GitHub's token scanning, PyPI's
``/_/secrets/disclose-token``): a JSON list of objects with at least ``token``, usually also
``type``, ``url`` (where the token was found) and ``source``. Every bound is explicit.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from bastion.tokens.errors import LeakReportTooLarge, MalformedLeakReport
from bastion.tokens.services import LeakReport

MAX_BODY_BYTES = 1024 * 1024
MAX_ENTRIES = 1000
_TEXT_FIELDS = ("type", "url", "source")


def bearer_matches(authorization: str | None, *, expected_secret: str) -> bool:
    """True if ``Authorization: Bearer <secret>`` carries ``expected_secret`` (constant time)."""
    scheme, _, presented = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), expected_secret.encode())


def check_declared_length(content_length: str | None) -> None:
    """LeakReportTooLarge before reading a body declared larger than the bound."""
    if content_length and content_length.isdigit() and int(content_length) > MAX_BODY_BYTES:
        raise LeakReportTooLarge(f"a report is at most {MAX_BODY_BYTES} bytes")


def parse_leak_report(body: bytes) -> list[LeakReport]:
    """Every entry of a report, or MalformedLeakReport / LeakReportTooLarge with one reason."""
    if len(body) > MAX_BODY_BYTES:
        raise LeakReportTooLarge(f"a report is at most {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise MalformedLeakReport("the body is not valid JSON") from None
    if not isinstance(data, list):
        raise MalformedLeakReport("the body must be a JSON list of reports")
    if len(data) > MAX_ENTRIES:
        raise LeakReportTooLarge(f"a report lists at most {MAX_ENTRIES} tokens")
    return [_entry(index, item) for index, item in enumerate(data)]


def _entry(index: int, item: Any) -> LeakReport:
    if not isinstance(item, dict):
        raise MalformedLeakReport(f"entry {index} is not an object")
    token = item.get("token")
    if not isinstance(token, str) or not token.strip():
        raise MalformedLeakReport(f"entry {index} has no 'token' string")
    fields: dict[str, str] = {}
    for name in _TEXT_FIELDS:
        value = item.get(name)
        if value is not None and not isinstance(value, str):
            raise MalformedLeakReport(f"entry {index}: '{name}' must be a string")
        fields[name] = value or ""
    return LeakReport(token=token.strip(), **fields)
