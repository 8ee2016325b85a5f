"""Caveats: the restrictions carried by an API token, and the pure checks that enforce them.

Wire format (the one PyPI uses, so PyPI tooling can read and attenuate bastion tokens): each
caveat is a first-party macaroon caveat whose predicate is a JSON array ``[TAG, field, ...]``.
Fields are positional; new ones may only be appended, with defaults. bastion writes compact
JSON; any JSON whitespace is accepted when reading, because other tools (pypitoken) attenuate
tokens with ``json.dumps`` defaults.

====  =============  ==========================================
tag   class          fields
====  =============  ==========================================
0     Expiration     expires_at: int, not_before: int (unix s)
1     ProjectName    normalized_names: list[str]
2     ProjectID      project_ids: list[str]
3     RequestUser    user_id: str
4     (OIDC)         not supported: always fails
====  =============  ==========================================

Parsing is strict and fails closed: unknown tags, missing or extra fields, wrong JSON types
(``true`` is not an integer), duplicate object keys and invalid UTF-8 or JSON raise
``CaveatError``, and a token carrying such a caveat is rejected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NoReturn, assert_never

from packaging.utils import canonicalize_name

from bastion.security.errors import CaveatError

# Permissions an API token can ever grant. Anything else (managing the account, the token
# itself, ...) needs a logged-in session, whatever the token's caveats say.
PERMISSIONS: frozenset[str] = frozenset({"upload"})

EXPIRATION_TAG = 0
PROJECT_NAME_TAG = 1
PROJECT_ID_TAG = 2
REQUEST_USER_TAG = 3
OIDC_PUBLISHER_TAG = 4


@dataclass(frozen=True)
class Expiration:
    """Valid while ``not_before <= now < expires_at``."""

    expires_at: int
    not_before: int


@dataclass(frozen=True)
class ProjectName:
    """Valid only for projects whose normalized (PEP 503) name is listed."""

    normalized_names: tuple[str, ...]


@dataclass(frozen=True)
class ProjectID:
    """Valid only for existing projects whose id is listed; survives renames."""

    project_ids: tuple[str, ...]


@dataclass(frozen=True)
class RequestUser:
    """Valid only when the request is made on behalf of this user id."""

    user_id: str


Caveat = Expiration | ProjectName | ProjectID | RequestUser


@dataclass(frozen=True)
class RequestContext:
    """What a token is being used for. ``now`` is unix seconds, supplied by the caller."""

    user_id: str
    project_name: str | None  # normalized (PEP 503); None outside a project
    project_id: str | None  # None when the project does not exist (yet)
    now: int
    permission: str = "upload"


# --- serialization -------------------------------------------------------------------------


def serialize(caveat: Caveat) -> str:
    """The compact JSON predicate for ``caveat``."""
    return json.dumps(_to_array(caveat), separators=(",", ":"), sort_keys=True)


def _to_array(caveat: Caveat) -> list[object]:
    match caveat:
        case Expiration():
            return [EXPIRATION_TAG, caveat.expires_at, caveat.not_before]
        case ProjectName():
            return [PROJECT_NAME_TAG, list(caveat.normalized_names)]
        case ProjectID():
            return [PROJECT_ID_TAG, list(caveat.project_ids)]
        case RequestUser():
            return [REQUEST_USER_TAG, caveat.user_id]
        case _:
            assert_never(caveat)


def deserialize(predicate: str | bytes) -> Caveat | None:
    """Parse a caveat predicate.

    Returns None for the legacy no-op ``{"version": 1, "permissions": "user"}``, which
    restricts nothing beyond the token's own user. Raises ``CaveatError`` on anything else that
    is not a well-formed caveat.
    """
    value = _load_json(predicate)
    if isinstance(value, list):
        return _from_array(value)
    if isinstance(value, dict):
        return _from_legacy(value)
    _malformed("expected a JSON array")


def _malformed(detail: str) -> NoReturn:
    # The detail never echoes caveat contents: they are attacker-controlled text.
    raise CaveatError(f"malformed caveat: {detail}")


def _load_json(predicate: str | bytes) -> Any:
    if isinstance(predicate, bytes):
        try:
            text = predicate.decode("utf-8")
        except UnicodeDecodeError:
            _malformed("not valid UTF-8")
    else:
        text = predicate
    try:
        return json.loads(
            text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant
        )
    except (ValueError, RecursionError):
        _malformed("not valid JSON")


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        _malformed("duplicate key")
    return result


def _reject_constant(name: str) -> NoReturn:
    _malformed("NaN and Infinity are not allowed")


def _from_array(items: list[Any]) -> Caveat:
    if not items:
        _malformed("empty array")
    tag, fields = items[0], items[1:]
    if not _is_int(tag):
        _malformed("tag is not an integer")
    if tag == EXPIRATION_TAG:
        expires_at, not_before = _exact_fields(fields, 2)
        return Expiration(expires_at=_int(expires_at), not_before=_int(not_before))
    if tag == PROJECT_NAME_TAG:
        (names,) = _exact_fields(fields, 1)
        return ProjectName(normalized_names=_str_tuple(names))
    if tag == PROJECT_ID_TAG:
        (project_ids,) = _exact_fields(fields, 1)
        return ProjectID(project_ids=_str_tuple(project_ids))
    if tag == REQUEST_USER_TAG:
        (user_id,) = _exact_fields(fields, 1)
        return RequestUser(user_id=_str(user_id))
    if tag == OIDC_PUBLISHER_TAG:
        raise CaveatError("unsupported caveat")
    _malformed("unknown tag")


def _from_legacy(obj: dict[str, Any]) -> Caveat | None:
    """The pre-2023 PyPI object forms (section 5.2, "Legacy formats")."""
    keys = set(obj)
    if keys == {"version", "permissions"}:
        if not _is_int(obj["version"]) or obj["version"] != 1:
            _malformed("unknown legacy version")
        permissions = obj["permissions"]
        if permissions == "user":
            return None
        if isinstance(permissions, dict) and set(permissions) == {"projects"}:
            names = _str_tuple(permissions["projects"])
            return ProjectName(normalized_names=tuple(canonicalize_name(n) for n in names))
        _malformed("unknown legacy permissions")
    if keys == {"exp", "nbf"}:
        return Expiration(expires_at=_int(obj["exp"]), not_before=_int(obj["nbf"]))
    if keys == {"project_ids"}:
        return ProjectID(project_ids=_str_tuple(obj["project_ids"]))
    _malformed("unknown legacy caveat")


def _exact_fields(fields: list[Any], count: int) -> list[Any]:
    if len(fields) != count:
        _malformed(f"expected {count} field(s), got {len(fields)}")
    return fields


def _is_int(value: object) -> bool:
    # bool is a subclass of int in Python, but `true` is not an integer in a caveat.
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: object) -> int:
    if not _is_int(value):
        _malformed("expected an integer")
    assert isinstance(value, int)
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        _malformed("expected a string")
    return value


def _str_tuple(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        _malformed("expected a list of strings")
    return tuple(_str(item) for item in value)


# --- checks --------------------------------------------------------------------------------


def is_project_caveat(caveat: Caveat) -> bool:
    """True for the caveats that depend on the project a request is about."""
    return isinstance(caveat, ProjectName | ProjectID)


def check_permission(context: RequestContext) -> str | None:
    """None if API tokens may grant ``context.permission`` at all, else the reason."""
    if context.permission in PERMISSIONS:
        return None
    return f"API tokens are not valid for permission: {context.permission}"


def check(caveat: Caveat, context: RequestContext) -> str | None:
    """None if ``caveat`` is satisfied in ``context``, else the reason it is not."""
    match caveat:
        case Expiration():
            if context.now >= caveat.expires_at:
                return "token is expired"
            if context.now < caveat.not_before:
                return "token is not yet valid"
            return None
        case ProjectName():
            if context.project_name is None:
                return "project-scoped token used outside of a project context"
            if context.project_name not in caveat.normalized_names:
                return _not_valid_for_project(context.project_name)
            return None
        case ProjectID():
            if context.project_name is None and context.project_id is None:
                return "project-scoped token used outside of a project context"
            if context.project_id is None or context.project_id not in caveat.project_ids:
                return _not_valid_for_project(context.project_name or context.project_id or "")
            return None
        case RequestUser():
            if context.user_id != caveat.user_id:
                return "token is not valid for this user"
            return None
        case _:
            assert_never(caveat)


def _not_valid_for_project(project: str) -> str:
    return f"project-scoped token is not valid for project: '{project}'"
