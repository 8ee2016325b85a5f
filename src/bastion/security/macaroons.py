"""API tokens as macaroons: mint, read and verify.

A token is ``"bastion-"`` followed by a version-2 pymacaroons macaroon in its default (URL-safe,
unpadded base64) serialization, the same shape as PyPI's ``pypi-...`` tokens, so pypitoken can
load and attenuate it. The identifier is the token row's id; the root key is that row's 32 random
bytes; every caveat is a first-party caveat holding a ``bastion.security.caveats`` predicate.
The location is an unsigned hint (macaroons do not cover it with the HMAC) and is never trusted.

This is the only module that imports pymacaroons.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pymacaroons
from pymacaroons.exceptions import MacaroonException, MacaroonInvalidSignatureException

from bastion.security.caveats import (
    Caveat,
    RequestContext,
    check,
    check_permission,
    deserialize,
    serialize,
)
from bastion.security.errors import CaveatError, TokenFormatError, TokenInvalid

PREFIX = "bastion"
KEY_LENGTH = 32

# URL-safe base64, as pymacaroons writes it. Padding is tolerated (leak scanners match it).
_BODY_PATTERN = re.compile(r"[A-Za-z0-9_\-]+=*")


def mint(*, key: bytes, identifier: str, location: str, caveats: Sequence[Caveat]) -> str:
    """A new token for ``identifier`` signed with ``key``, restricted by ``caveats``."""
    if len(key) != KEY_LENGTH:
        raise ValueError(f"token key must be {KEY_LENGTH} bytes")
    if not identifier or not location:
        raise ValueError("token identifier and location must not be empty")
    macaroon = pymacaroons.Macaroon(
        location=location, identifier=identifier, key=key, version=pymacaroons.MACAROON_V2
    )
    for caveat in caveats:
        macaroon.add_first_party_caveat(serialize(caveat))
    return f"{PREFIX}-{macaroon.serialize()}"


def read_identifier(token: str) -> str:
    """The token's identifier (its row id), WITHOUT verifying anything. Used to find the key."""
    return _identifier_of(_parse(token))


def caveats_of(token: str) -> tuple[Caveat, ...]:
    """The caveats embedded in the token, unverified (for display and attenuation detection).

    Raises ``TokenFormatError`` if the token does not parse and ``CaveatError`` if a caveat does
    not (third-party caveats included). Legacy no-op caveats are left out.
    """
    result: list[Caveat] = []
    for raw in _parse(token).caveats:
        if not raw.first_party():
            raise CaveatError("third-party caveats are not supported")
        caveat = deserialize(raw.caveat_id_bytes)
        if caveat is not None:
            result.append(caveat)
    return tuple(result)


def verify(
    token: str,
    *,
    key: bytes,
    context: RequestContext,
    stored_caveats: Sequence[Caveat] = (),
) -> None:
    """Return if ``token`` grants ``context``; raise ``TokenInvalid`` with every reason if not.

    The HMAC chain must match ``key``, every caveat in the token must be understood and
    satisfied, and so must ``stored_caveats``: the caveats on the server's token row, which are
    authoritative (they apply even if the presented token was minted without them).
    Raises ``TokenFormatError`` if the token does not parse at all.
    """
    macaroon = _parse(token)
    reasons: list[str] = []
    permission_reason = check_permission(context)
    if permission_reason is not None:
        reasons.append(permission_reason)
    reasons.extend(_verify_macaroon(macaroon, key=key, context=context))
    for caveat in stored_caveats:
        reason = check(caveat, context)
        if reason is not None:
            reasons.append(reason)
    if reasons:
        # The stored caveats usually repeat the embedded ones: report each reason once.
        raise TokenInvalid(tuple(dict.fromkeys(reasons)))


def _verify_macaroon(macaroon: Any, *, key: bytes, context: RequestContext) -> list[str]:
    """Every reason the presented macaroon fails: unmet caveats and a signature mismatch."""
    for raw in macaroon.caveats:
        # Checked before running the Verifier: it would look for discharge macaroons for a
        # third-party caveat, and crash decoding a predicate that is not UTF-8.
        if not raw.first_party():
            return ["third-party caveats are not supported"]
        try:
            raw.caveat_id_bytes.decode("utf-8")
        except UnicodeDecodeError:
            return ["malformed caveat: not valid UTF-8"]

    reasons: list[str] = []
    evaluated = 0

    def satisfier(predicate: str) -> bool:
        nonlocal evaluated
        evaluated += 1
        try:
            caveat = deserialize(predicate)
        except CaveatError as error:
            reasons.append(str(error))
            return True
        if caveat is not None:
            reason = check(caveat, context)
            if reason is not None:
                reasons.append(reason)
        # Always True: the outcome is recorded in `reasons`, and any reason fails the token.
        # Returning False would make pymacaroons skip this caveat's HMAC step and report a
        # misleading "signatures do not match" instead of the real reason.
        return True

    verifier = pymacaroons.Verifier()
    verifier.satisfy_general(satisfier)
    try:
        verifier.verify(macaroon, key)
    except MacaroonInvalidSignatureException:
        reasons.append("signatures do not match")
    except MacaroonException:
        reasons.append("token could not be verified")
    if evaluated != len(macaroon.caveats):
        # Defensive: never accept a token with a caveat the satisfier did not see.
        reasons.append("token could not be verified")
    return reasons


def _parse(token: str) -> Any:
    """Deserialize a ``bastion-...`` token into a pymacaroons Macaroon, or TokenFormatError."""
    prefix, dash, body = token.strip().partition("-")
    if prefix != PREFIX or not dash or not _BODY_PATTERN.fullmatch(body):
        raise TokenFormatError()
    try:
        macaroon = pymacaroons.Macaroon.deserialize(body)
    except Exception:  # pymacaroons raises many types, including bare Exception
        # `from None`: the library's message may contain bytes of the token.
        raise TokenFormatError() from None
    if macaroon.version != pymacaroons.MACAROON_V2:
        raise TokenFormatError()
    return macaroon


def _identifier_of(macaroon: Any) -> str:
    raw: bytes = macaroon.identifier_bytes
    try:
        identifier = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TokenFormatError() from None
    if not identifier:
        raise TokenFormatError()
    return identifier
