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
from dataclasses import dataclass
from typing import Any

import pymacaroons
from pymacaroons.exceptions import MacaroonException

from bastion.security.caveats import (
    Caveat,
    RequestContext,
    check,
    check_permission,
    deserialize,
    is_project_caveat,
    serialize,
)
from bastion.security.errors import (
    CaveatError,
    TokenFormatError,
    TokenInvalid,
    TokenSignatureInvalid,
)

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
    return parse(token).identifier


@dataclass(frozen=True)
class Parsed:
    """A token read once (``parse``), for ``authenticate`` to verify without reading it again:
    its identifier is NOT verified."""

    identifier: str
    macaroon: Any


def parse(token: str) -> Parsed:
    """``read_identifier``, keeping what was read for ``authenticate`` (TokenFormatError)."""
    macaroon = _parse(token)
    return Parsed(identifier=_identifier_of(macaroon), macaroon=macaroon)


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


def authenticate(
    token: str | Parsed,
    *,
    key: bytes,
    user_id: str,
    permission: str,
    now: int,
    stored_caveats: Sequence[Caveat] = (),
) -> ProjectScope:
    """Step one of every use of a token, before anything else of the request is read.

    Verifies the HMAC chain against ``key`` and every caveat that does not depend on the
    project the request is about (expiry, not-before, user, permission, well-formedness), in
    the token and in ``stored_caveats`` (the server's row, which is authoritative). Project
    caveats are returned as a ``ProjectScope`` to check once the request names its project.

    Raises ``TokenSignatureInvalid`` if the signature does not match (the presenter proved
    nothing: no other reason is reported), ``TokenInvalid`` with every reason if a caveat
    fails, ``TokenFormatError`` if the token does not parse at all. ``token`` may be the
    result of ``parse`` (read once per request).
    """
    macaroon = token.macaroon if isinstance(token, Parsed) else _parse(token)
    context = RequestContext(
        user_id=user_id, project_name=None, project_id=None, now=now, permission=permission
    )
    deferred: list[Caveat] = []
    reasons = _verify_macaroon(macaroon, key=key, context=context, deferred=deferred)
    permission_reason = check_permission(context)
    if permission_reason is not None:
        reasons.insert(0, permission_reason)
    for caveat in stored_caveats:
        if is_project_caveat(caveat):
            deferred.append(caveat)
            continue
        reason = check(caveat, context)
        if reason is not None:
            reasons.append(reason)
    if reasons:
        # The stored caveats usually repeat the embedded ones: report each reason once.
        raise TokenInvalid(tuple(dict.fromkeys(reasons)))
    return ProjectScope(caveats=tuple(dict.fromkeys(deferred)), user_id=user_id, now=now)


@dataclass(frozen=True)
class ProjectScope:
    """The project caveats of an authenticated token, to check once the project is known."""

    caveats: tuple[Caveat, ...]
    user_id: str
    now: int

    def check(self, *, project_name: str | None, project_id: str | None) -> None:
        """Return if the token may act on this project; ``TokenInvalid`` with the reasons if not.

        ``project_name`` is normalized (PEP 503); ``project_id`` is None for a project that does
        not exist yet.
        """
        context = RequestContext(
            user_id=self.user_id,
            project_name=project_name,
            project_id=project_id,
            now=self.now,
        )
        reasons = [reason for c in self.caveats if (reason := check(c, context)) is not None]
        if reasons:
            raise TokenInvalid(tuple(dict.fromkeys(reasons)))


def verify(
    token: str,
    *,
    key: bytes,
    context: RequestContext,
    stored_caveats: Sequence[Caveat] = (),
) -> None:
    """Both steps at once: ``authenticate``, then the project caveats for ``context``.

    Raises ``TokenInvalid`` (``TokenSignatureInvalid`` for a bad signature) or
    ``TokenFormatError``, as ``authenticate`` does.
    """
    scope = authenticate(
        token,
        key=key,
        user_id=context.user_id,
        permission=context.permission,
        now=context.now,
        stored_caveats=stored_caveats,
    )
    scope.check(project_name=context.project_name, project_id=context.project_id)


def _verify_macaroon(
    macaroon: Any, *, key: bytes, context: RequestContext, deferred: list[Caveat]
) -> list[str]:
    """Every reason an embedded caveat fails; ``TokenSignatureInvalid`` if the chain does not
    verify. Project caveats are not checked here: they are appended to ``deferred``.
    """
    for raw in macaroon.caveats:
        # Checked before running the Verifier: it would look for discharge macaroons for a
        # third-party caveat, and crash decoding a predicate that is not UTF-8. The chain of
        # such a token cannot be verified, so whoever presents it proved nothing.
        if not raw.first_party():
            raise TokenSignatureInvalid("third-party caveats are not supported")
        try:
            raw.caveat_id_bytes.decode("utf-8")
        except UnicodeDecodeError:
            raise TokenSignatureInvalid("malformed caveat: not valid UTF-8") from None

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
        if caveat is None:
            return True
        if is_project_caveat(caveat):
            deferred.append(caveat)
            return True
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
    except MacaroonException:
        raise TokenSignatureInvalid() from None
    if evaluated != len(macaroon.caveats):
        # Defensive: never accept a token with a caveat the satisfier did not see.
        raise TokenSignatureInvalid("token could not be verified")
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
