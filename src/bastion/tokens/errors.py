"""Errors raised by token services (the codec's own errors live in bastion.security.errors)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bastion.security.errors import TokenInvalid

if TYPE_CHECKING:
    from bastion.tokens.models import ApiToken


class TokenServiceError(Exception):
    code = "token.error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TokenNameInUse(TokenServiceError):
    code = "token.name-in-use"


class InvalidTokenRequest(TokenServiceError):
    code = "token.invalid-request"


class TokenRefused(TokenInvalid):
    """A genuine token (its signature verified) whose caveats refuse this request.

    The presenter holds the real token, so the refusal may be recorded against it.
    """

    code = "token.refused"

    def __init__(self, reasons: Sequence[str], *, token: ApiToken) -> None:
        super().__init__(reasons)
        self.token = token


class MalformedLeakReport(TokenServiceError):
    """A leaked-token report that is not a JSON list of objects with a ``token`` string."""

    code = "token.leak-report.malformed"


class LeakReportTooLarge(TokenServiceError):
    code = "token.leak-report.too-large"
