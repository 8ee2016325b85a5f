"""Minting, checking and revoking API tokens.

Tokens grant upload only (``bastion.security.caveats.PERMISSIONS``). A user-wide token carries a
RequestUser caveat; a project-scoped one adds a ProjectName caveat listing normalized names (a
project that does not exist yet may be named: the first upload creates it, and the bearer's user
still needs a role on any existing project).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from urllib.parse import urlsplit
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from bastion import rows
from bastion.accounts.models import User
from bastion.actors import Actor
from bastion.audit.chain import coarse_ip
from bastion.audit.services import record
from bastion.core.names import is_valid_name, normalize_name
from bastion.projects.models import DeletedProject, FilenameRecord, Project
from bastion.security import caveats as caveat_codec
from bastion.security import macaroons
from bastion.security.errors import (
    TokenError,
    TokenFormatError,
    TokenInvalid,
    TokenSignatureInvalid,
)
from bastion.tokens.errors import InvalidTokenRequest, TokenNameInUse, TokenRefused
from bastion.tokens.models import ApiToken

MAX_NAME_LENGTH = 100
MAX_SEEN_ADDRESSES = 50
# What a leak report may put in an audit event or an e-mail, per field.
MAX_REPORTED_URL = 1000
MAX_REPORTED_LABEL = 100


def _location() -> str:
    return urlsplit(settings.BASTION.base_url).netloc


def create_token(
    *,
    actor: Actor,
    user: User,
    name: str | None,
    project_names: Sequence[str] = (),
    expires_in: timedelta | None = None,
    now: datetime,
) -> tuple[ApiToken, str]:
    """Mint a token for ``user``; returns the row and the secret token string (shown once)."""
    if name is None:
        name = f"token-{now:%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidTokenRequest(f"a token name must be 1 to {MAX_NAME_LENGTH} characters long")
    normalized: list[str] = []
    for project_name in project_names:
        if not is_valid_name(project_name):
            raise InvalidTokenRequest(f"{project_name!r} is not a valid project name")
        if normalize_name(project_name) not in normalized:
            normalized.append(normalize_name(project_name))
    if expires_in is not None and expires_in <= timedelta(0):
        raise InvalidTokenRequest("the expiry must be in the future")

    issued: list[caveat_codec.Caveat] = [caveat_codec.RequestUser(user_id=str(user.pk))]
    if normalized:
        issued.append(caveat_codec.ProjectName(normalized_names=tuple(normalized)))
    expires = None
    if expires_in is not None:
        expires = now + expires_in
        issued.append(
            caveat_codec.Expiration(
                expires_at=int(expires.timestamp()), not_before=int(now.timestamp())
            )
        )
    key = secrets.token_bytes(32)
    with transaction.atomic():
        try:
            # The unique (user, name) constraint decides in one step: a look-up first could be
            # separated from the insert by a concurrent creation of the same name.
            with transaction.atomic():
                token = ApiToken.objects.create(
                    user=user,
                    name=name,
                    key=key,
                    caveats=[caveat_codec.serialize(c) for c in issued],
                    project_names=normalized,
                    created=now,
                    expires=expires,
                )
        except IntegrityError:
            raise TokenNameInUse(f"{user.username} already has a token named {name!r}") from None
        details = {
            "token_id": str(token.id),
            "name": name,
            "scope": normalized or "user",
            "expires": expires.isoformat() if expires else None,
        }
        record("token.created", actor=actor, subject_user=user, payload=details, now=now)
        for project_name in normalized:
            record(
                "project.token.created",
                actor=actor,
                subject_user=user,
                project=Project.objects.filter(normalized_name=project_name).first(),
                project_name=project_name,
                payload=details,
                now=now,
            )
    secret = macaroons.mint(key=key, identifier=str(token.id), location=_location(), caveats=issued)
    return token, secret


@dataclass(frozen=True)
class AuthenticatedToken:
    """A token that proved itself: its row, and the project caveats still to check.

    Only ``authenticate`` makes one, so holding one means the signature and every caveat that
    does not depend on the project were verified.
    """

    token: ApiToken
    scope: macaroons.ProjectScope

    @property
    def user(self) -> User:
        return self.token.user

    def check_project(self, *, project_name: str, project_id: str | None) -> None:
        """TokenInvalid unless the token may act on this (normalized) project."""
        self.scope.check(project_name=project_name, project_id=project_id)


def authenticate(raw: str, *, permission: str, now: datetime) -> AuthenticatedToken:
    """Look the token up and verify it, in one step, before anything else of the request.

    Raises ``TokenFormatError`` (not a token), ``TokenSignatureInvalid`` (unknown, revoked or
    forged: the presenter proved nothing and stays anonymous), ``TokenRefused`` (a genuine
    token whose caveats refuse this request: expired, another user, disabled account, or a
    project scope whose projects were all deleted).
    """
    parsed = macaroons.parse(raw)
    try:
        token_id = UUID(parsed.identifier)
    except ValueError:
        raise TokenFormatError("Invalid API Token: the token's identifier is malformed") from None
    token = _token_and_user(token_id)
    if token is None:
        # Indistinguishable from a forgery for the client: no row, nothing to verify against.
        raise TokenSignatureInvalid("token is revoked or does not exist")
    stored = [
        parsed
        for parsed in (caveat_codec.deserialize(c) for c in token.caveats)
        if parsed is not None
    ]
    try:
        scope = macaroons.authenticate(
            parsed,
            key=bytes(token.key),
            user_id=str(token.user_id),
            permission=permission,
            now=int(now.timestamp()),
            stored_caveats=stored,
        )
    except TokenSignatureInvalid:
        raise
    except TokenInvalid as refused:
        raise TokenRefused(refused.reasons, token=token) from None
    if not token.user.is_active:
        raise TokenRefused(("the token's user is disabled",), token=token)
    if scope_was_deleted(token.project_names):
        raise TokenRefused(("every project of the token's scope was deleted",), token=token)
    return AuthenticatedToken(token=token, scope=scope)


def _token_and_user(token_id: UUID) -> ApiToken | None:
    """The token's row with its user's, by primary key, in one statement written in SQL
    (building the ORM's joined query cost about twice what the answer takes; every upload asks
    this). None when there is no such token (a deleted user's went with it)."""
    pk = ApiToken._meta.pk
    assert pk is not None
    key = pk.get_db_prep_value(token_id, connection)
    found = rows.get_joined(ApiToken, User, _token_and_user_sql(), [key])
    if found is None:
        return None
    token, user = found
    token.user = user
    return token


@cache
def _token_and_user_sql() -> str:
    quote = connection.ops.quote_name
    tokens, users = quote(ApiToken._meta.db_table), quote(User._meta.db_table)
    return (
        f"INNER JOIN {users} ON {users}.{quote('id')} = {tokens}.{quote('user_id')} "
        f"WHERE {tokens}.{quote('id')} = %s"
    )


def scope_was_deleted(project_names: Sequence[str]) -> bool:
    """True if a project-scoped token's projects all existed once and none exists any more.

    A name in the scope that was never a project keeps the token alive: its first upload may
    still create it. A deleted project is known by its reservation (``DeletedProject``) and,
    once that has ended, by the file names it used, which are never forgotten
    (``FilenameRecord``).
    """
    names = set(project_names)
    if not names or Project.objects.filter(normalized_name__in=names).exists():
        return False
    deleted = set(
        DeletedProject.objects.filter(normalized_name__in=names).values_list(
            "normalized_name", flat=True
        )
    )
    if deleted != names:
        deleted |= set(
            FilenameRecord.objects.filter(project_name__in=names).values_list(
                "project_name", flat=True
            )
        )
    return deleted == names


def record_use(token: ApiToken, *, actor: Actor, now: datetime) -> None:
    """Last-used time, and an event the first time the token is used from an address.

    Runs inside the transaction of the change the token was used for. Addresses are kept only
    as keyed hashes (HMAC with the secret key), at most ``MAX_SEEN_ADDRESSES`` of them.
    """
    updates: dict[str, object] = {
        "last_used": now,
        "last_used_from": coarse_ip(actor.ip_address) or "",
    }
    new_address = False
    if actor.ip_address:
        digest = hmac.new(
            settings.SECRET_KEY.encode(), actor.ip_address.encode(), hashlib.sha256
        ).hexdigest()[:32]
        seen = list(token.seen_addresses or [])
        if digest not in seen:
            new_address = True
            seen = (seen + [digest])[-MAX_SEEN_ADDRESSES:]
            updates["seen_addresses"] = seen
            token.seen_addresses = seen
    # The token's row first, then the event (which locks the audit chain head): uploads lock
    # in this order, and two transactions locking in opposite orders can deadlock.
    _update_token(token, updates)
    if new_address:
        record(
            "token.used-from-new-address",
            actor=actor,
            subject_user=token.user,
            payload={"token_id": str(token.pk), "name": token.name},
            now=now,
        )


def _update_token(token: ApiToken, updates: dict[str, object]) -> None:
    """One UPDATE of the token's row in SQL, each value prepared by its model field the way the
    ORM's ``update`` would (datetimes, JSON): ~0.5 ms less per upload than building it."""
    fields = [ApiToken._meta.get_field(name) for name in updates]
    assignments = ", ".join(f"{field.column} = %s" for field in fields)  # type: ignore[union-attr]
    values = [
        field.get_db_prep_save(updates[field.name], connection)  # type: ignore[union-attr]
        for field in fields
    ]
    pk = ApiToken._meta.pk
    assert pk is not None
    rows.execute(
        f"UPDATE {ApiToken._meta.db_table} SET {assignments} WHERE id = %s",  # noqa: S608
        [*values, pk.get_db_prep_value(token.pk, connection)],
    )


def revoke_token(*, actor: Actor, token: ApiToken, now: datetime) -> None:
    with transaction.atomic():
        ApiToken.objects.filter(pk=token.pk).delete()
        record(
            "token.revoked",
            actor=actor,
            subject_user=token.user,
            payload={"token_id": str(token.pk), "name": token.name},
            now=now,
        )


@dataclass(frozen=True)
class LeakReport:
    """One entry of a leaked-token report (the shape secret scanners send)."""

    token: str
    type: str = ""
    url: str = ""
    source: str = ""


def genuine_token(raw: str, *, now: datetime) -> ApiToken | None:
    """The row of a token whose signature verifies against its key, valid or not; else None.

    A forged token naming a real row's id proves nothing and matches nothing.
    """
    try:
        return authenticate(raw, permission="upload", now=now).token
    except TokenRefused as refused:  # genuine, but expired, disabled, out of scope...
        return refused.token
    except TokenError:  # malformed, forged, unknown or already revoked
        return None


def revoke_leaked_token(*, actor: Actor, report: LeakReport, now: datetime) -> ApiToken | None:
    """Revoke the token a leak report names if it is genuine; returns its (deleted) row.

    The row goes and ``token.leaked`` is recorded in one transaction. None if the token is not
    genuine or was revoked meanwhile (a report naming it twice revokes it once).
    """
    token = genuine_token(report.token, now=now)
    if token is None:
        return None
    with transaction.atomic():
        deleted, _ = ApiToken.objects.filter(pk=token.pk).delete()
        if not deleted:
            return None
        record(
            "token.leaked",
            actor=actor,
            subject_user=token.user,
            payload={
                "token_id": str(token.pk),
                "name": token.name,
                "scope": list(token.project_names) or "user",
                "url": report.url[:MAX_REPORTED_URL],
                "source": report.source[:MAX_REPORTED_LABEL],
                "type": report.type[:MAX_REPORTED_LABEL],
            },
            now=now,
        )
    return token
