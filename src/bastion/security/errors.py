"""Errors raised by the API-token code in ``bastion.security``.

One root (``TokenError``); each leaf has a stable ``code``. Messages never contain the token or
its key, so they are safe to log and to return to the client.
"""

from __future__ import annotations

from collections.abc import Sequence


class TokenError(Exception):
    """Root of every API-token error. ``str(error)`` is the message."""

    code: str = "token.error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class TokenFormatError(TokenError):
    """Not a bastion token: wrong prefix, or the macaroon does not decode."""

    code = "token.malformed"

    def __init__(self, message: str = "not a valid bastion API token") -> None:
        super().__init__(message)


class TokenInvalid(TokenError):
    """The token decoded but must not be honoured: bad signature or an unmet caveat."""

    code = "token.invalid"

    def __init__(self, reasons: Sequence[str]) -> None:
        # Never let an empty reason list produce a confusing message.
        self.reasons: tuple[str, ...] = tuple(reasons) or ("token is invalid",)
        super().__init__("Invalid API Token: " + "; ".join(self.reasons))


class TokenSignatureInvalid(TokenInvalid):
    """The token's signature does not match its key: the presenter proved nothing.

    Whoever presents such a token is anonymous; nothing may be attributed to the token's owner.
    """

    code = "token.signature"

    def __init__(self, reason: str = "signatures do not match") -> None:
        super().__init__((reason,))


class CaveatError(TokenError):
    """A caveat predicate that cannot be understood; the token carrying it fails."""

    code = "token.caveat-malformed"
