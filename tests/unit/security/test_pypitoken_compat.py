"""bastion tokens interoperate with pypitoken, the client-side library for PyPI tokens.

Users attenuate tokens offline with pypitoken; bastion must read and enforce what it writes.
"""

from __future__ import annotations

import pypitoken
import pytest

from bastion.security.caveats import (
    Expiration,
    ProjectID,
    ProjectName,
    RequestContext,
    RequestUser,
)
from bastion.security.errors import TokenInvalid
from bastion.security.macaroons import caveats_of, mint, read_identifier, verify

KEY = bytes(range(32))
TOKEN_ID = "7a1e2f3c-4b5d-4e6f-8a9b-0c1d2e3f4a5b"
USER_ID = "5f3c1a52-8a4e-4e3c-9d0f-2b1e6a7c9d10"
PROJECT_ID = "0b7e0a9c-3f1d-4b8e-a2c4-6d5e8f1a2b3c"
LOCATION = "bastion.example"


def context(project_name: str = "foo", now: int = 1_500, **overrides: object) -> RequestContext:
    values: dict[str, object] = {
        "user_id": USER_ID,
        "project_name": project_name,
        "project_id": PROJECT_ID,
        "now": now,
    }
    values.update(overrides)
    return RequestContext(**values)  # type: ignore[arg-type]


def user_token() -> str:
    return mint(
        key=KEY, identifier=TOKEN_ID, location=LOCATION, caveats=[RequestUser(user_id=USER_ID)]
    )


def restricted(**restrictions: object) -> str:
    token = pypitoken.Token.load(user_token())
    token.restrict(**restrictions)
    dumped: str = token.dump()
    return dumped


def reasons_of(token: str, request: RequestContext) -> tuple[str, ...]:
    with pytest.raises(TokenInvalid) as raised:
        verify(token, key=KEY, context=request)
    return raised.value.reasons


def test_pypitoken_loads_a_bastion_token() -> None:
    token = pypitoken.Token.load(user_token())
    assert token.prefix == "bastion"
    assert token.identifier == TOKEN_ID
    assert token.domain == LOCATION


def test_pypitoken_understands_every_caveat_bastion_issues() -> None:
    token = mint(
        key=KEY,
        identifier=TOKEN_ID,
        location=LOCATION,
        caveats=[
            Expiration(expires_at=2_000, not_before=1_000),
            ProjectName(normalized_names=("foo",)),
            ProjectID(project_ids=(PROJECT_ID,)),
            RequestUser(user_id=USER_ID),
        ],
    )
    assert len(pypitoken.Token.load(token).restrictions) == 4


def test_pypitoken_project_names_restriction_is_enforced() -> None:
    token = restricted(project_names=["foo"])
    assert token.startswith("bastion-")
    assert read_identifier(token) == TOKEN_ID
    assert caveats_of(token) == (
        RequestUser(user_id=USER_ID),
        ProjectName(normalized_names=("foo",)),
    )
    verify(token, key=KEY, context=context("foo"))
    assert reasons_of(token, context("bar")) == (
        "project-scoped token is not valid for project: 'bar'",
    )


def test_pypitoken_project_ids_restriction_is_enforced() -> None:
    token = restricted(project_ids=[PROJECT_ID])
    verify(token, key=KEY, context=context())
    assert reasons_of(token, context(project_id="other")) == (
        "project-scoped token is not valid for project: 'foo'",
    )


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (999, ("token is not yet valid",)),
        (1_000, None),
        (1_999, None),
        (2_000, ("token is expired",)),
    ],
)
def test_pypitoken_date_restriction_is_enforced(now: int, expected: tuple[str, ...] | None) -> None:
    token = restricted(not_before=1_000, not_after=2_000)
    assert Expiration(expires_at=2_000, not_before=1_000) in caveats_of(token)
    if expected is None:
        verify(token, key=KEY, context=context(now=now))
    else:
        assert reasons_of(token, context(now=now)) == expected


def test_pypitoken_legacy_project_names_restriction_is_enforced() -> None:
    token = restricted(legacy_project_names=["Foo_Bar"])
    verify(token, key=KEY, context=context("foo-bar"))
    assert reasons_of(token, context("foo")) == (
        "project-scoped token is not valid for project: 'foo'",
    )


def test_pypitoken_legacy_date_restriction_is_enforced() -> None:
    token = restricted(legacy_not_before=1_000, legacy_not_after=2_000)
    verify(token, key=KEY, context=context(now=1_500))
    assert reasons_of(token, context(now=2_500)) == ("token is expired",)


def test_pypitoken_legacy_noop_restricts_nothing() -> None:
    token = restricted(legacy_noop=True)
    verify(token, key=KEY, context=context("anything"))


def test_pypitoken_restrictions_stack() -> None:
    token = pypitoken.Token.load(user_token())
    token.restrict(project_names=["foo", "bar"])
    token.restrict(project_names=["bar", "baz"])
    attenuated: str = token.dump()
    verify(attenuated, key=KEY, context=context("bar"))
    assert reasons_of(attenuated, context("foo")) == (
        "project-scoped token is not valid for project: 'foo'",
    )


def test_pypitoken_user_id_restriction_for_another_user_is_enforced() -> None:
    token = restricted(user_id="00000000-0000-4000-8000-000000000000")
    assert reasons_of(token, context()) == ("token is not valid for this user",)


def test_attenuated_token_with_the_wrong_key_still_fails() -> None:
    token = restricted(project_names=["foo"])
    with pytest.raises(TokenInvalid) as raised:
        verify(token, key=bytes(32), context=context("foo"))
    assert raised.value.reasons == ("signatures do not match",)
