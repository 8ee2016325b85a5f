"""The breached-password check: a Django password validator over a k-anonymity range API.

The range API is Have I Been Pwned's (https://haveibeenpwned.com/API/v3#PwnedPasswords):
``GET <url><first 5 hex chars of SHA-1(password)>`` answers one ``SUFFIX:COUNT`` line per known
hash with that prefix (the other 35 hex chars, upper case). With ``Add-Padding: true`` the answer
also carries random entries with count 0, so its size says nothing about the prefix; they never
count as breached. Only the 5-character prefix leaves the server: never the password, never the
full hash, neither on the wire nor in the log.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import urllib.request
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

logger = logging.getLogger(__name__)

PREFIX_LENGTH = 5
TIMEOUT_SECONDS = 3.0
MAX_ANSWER_BYTES = 4 * 1024 * 1024  # a real answer is ~30-40 KB; anything far bigger is wrong

_HEX = frozenset("0123456789ABCDEF")


class RangeAnswerError(ValueError):
    """The range API's answer is not ``SUFFIX:COUNT`` lines."""


def split_hash(password: str) -> tuple[str, str]:
    """``(prefix, suffix)`` of the upper-case hex SHA-1 of ``password`` (UTF-8): 5 + 35 chars."""
    digest = hashlib.sha1(password.encode("utf-8"), usedforsecurity=False).hexdigest().upper()
    return digest[:PREFIX_LENGTH], digest[PREFIX_LENGTH:]


def breach_count(answer: str, *, expected_suffix: str) -> int:
    """How often ``expected_suffix`` appears in a range ``answer`` (0: not at all).

    Suffixes compare case-insensitively; padding entries (count 0) never count. Raises
    :class:`RangeAnswerError` when a line is not ``SUFFIX:COUNT`` with a 35-hex-digit suffix.
    """
    wanted = expected_suffix.upper()
    for number, raw in enumerate(answer.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        suffix, sep, count = line.partition(":")
        suffix = suffix.strip().upper()
        count = count.strip()
        if (
            not sep
            or len(suffix) != 40 - PREFIX_LENGTH
            or not _HEX.issuperset(suffix)
            or not count.isascii()
            or not count.isdigit()
        ):
            raise RangeAnswerError(f"line {number} is not SUFFIX:COUNT")
        if suffix == wanted:
            return int(count)
    return 0


def fetch_range(url: str, prefix: str, *, timeout: float = TIMEOUT_SECONDS) -> str:
    """The range API's answer for ``prefix`` (the only part of the hash that is sent)."""
    request = urllib.request.Request(
        url + prefix,
        headers={"Add-Padding": "true", "User-Agent": "bastion (breached-password check)"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (operator URL)
        body: bytes = response.read(MAX_ANSWER_BYTES + 1)
    if len(body) > MAX_ANSWER_BYTES:
        raise RangeAnswerError("answer too large")
    return body.decode("ascii")


class PwnedPasswordValidator:
    """Refuse a password that the configured range API (``BASTION_PWNED_PASSWORDS_URL``) knows
    from a data breach, as PyPI does: any count above 0 refuses.

    Off when the URL is unset (the default). **Fails open**: when the service cannot be reached,
    answers an error or answers something that is not a range answer, the password is accepted
    and a warning is logged (naming the service, never the password or its hash), so an outage
    of a third party never blocks sign-up or a password reset. Django runs it wherever
    validators run: allauth's sign-up, change and reset forms and ``bastion user create``.
    """

    def validate(self, password: str, user: Any = None) -> None:
        url = settings.BASTION.pwned_passwords_url
        if not url:
            return
        prefix, suffix = split_hash(password)
        try:
            count = breach_count(fetch_range(url, prefix), expected_suffix=suffix)
        # URLError, HTTPError, timeouts (OSError); broken HTTP (HTTPException); bad answers
        except (OSError, http.client.HTTPException, ValueError) as exc:
            logger.warning(
                "breached-password check skipped: %s unusable (%s); password accepted",
                url,
                type(exc).__name__,
            )
            return
        if count > 0:
            raise ValidationError(
                ngettext_lazy(
                    "This password has appeared in a data breach %(count)d time; choose another.",
                    "This password has appeared in a data breach %(count)d times; choose another.",
                    "count",
                ),
                code="password_breached",
                params={"count": count},
            )

    def get_help_text(self) -> str:
        if not settings.BASTION.pwned_passwords_url:
            return ""
        return str(_("Your password can't be one that has appeared in a known data breach."))
