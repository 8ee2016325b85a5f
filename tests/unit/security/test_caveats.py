"""The caveat codec and the pure caveat checks (bastion.security.caveats)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.security.caveats import (
    PERMISSIONS,
    Caveat,
    Expiration,
    ProjectID,
    ProjectName,
    RequestContext,
    RequestUser,
    check,
    check_permission,
    deserialize,
    serialize,
)
from bastion.security.errors import CaveatError, TokenError

USER_ID = "5f3c1a52-8a4e-4e3c-9d0f-2b1e6a7c9d10"
PROJECT_ID = "0b7e0a9c-3f1d-4b8e-a2c4-6d5e8f1a2b3c"


def context(**overrides: object) -> RequestContext:
    values: dict[str, object] = {
        "user_id": USER_ID,
        "project_name": "foo",
        "project_id": PROJECT_ID,
        "now": 1_000,
    }
    values.update(overrides)
    return RequestContext(**values)  # type: ignore[arg-type]


# --- serialize ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caveat", "expected"),
    [
        (Expiration(expires_at=200, not_before=100), "[0,200,100]"),
        (ProjectName(normalized_names=("foo", "bar-baz")), '[1,["foo","bar-baz"]]'),
        (ProjectID(project_ids=(PROJECT_ID,)), f'[2,["{PROJECT_ID}"]]'),
        (RequestUser(user_id=USER_ID), f'[3,"{USER_ID}"]'),
    ],
)
def test_serialize_is_compact_positional_json(caveat: Caveat, expected: str) -> None:
    assert serialize(caveat) == expected
    assert deserialize(expected) == caveat


def test_deserialize_accepts_any_json_whitespace_and_bytes() -> None:
    assert deserialize("[0, 200, 100]") == Expiration(expires_at=200, not_before=100)
    assert deserialize(b'[ 1 ,\n\t[ "foo" ] ]') == ProjectName(normalized_names=("foo",))
    assert deserialize('[2, ["a", "b"]]') == ProjectID(project_ids=("a", "b"))
    assert deserialize(f' [3, "{USER_ID}"] ') == RequestUser(user_id=USER_ID)


def test_project_name_list_may_be_empty_and_then_matches_nothing() -> None:
    caveat = deserialize("[1,[]]")
    assert caveat == ProjectName(normalized_names=())
    assert check(caveat, context()) is not None


# --- legacy forms ---------------------------------------------------------------------------


def test_legacy_user_permission_is_a_no_op() -> None:
    assert deserialize('{"version": 1, "permissions": "user"}') is None
    assert deserialize(b'{"permissions":"user","version":1}') is None


def test_legacy_project_permissions_become_normalized_project_names() -> None:
    caveat = deserialize('{"version": 1, "permissions": {"projects": ["Foo_Bar", "baz.QUX"]}}')
    assert caveat == ProjectName(normalized_names=("foo-bar", "baz-qux"))


def test_legacy_expiration() -> None:
    assert deserialize('{"nbf": 100, "exp": 200}') == Expiration(expires_at=200, not_before=100)


def test_legacy_project_ids() -> None:
    assert deserialize('{"project_ids": ["a"]}') == ProjectID(project_ids=("a",))


# --- malformed ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "predicate",
    [
        pytest.param(b"\xff\xfe[0,1,0]", id="not-utf8"),
        pytest.param(b"\xef\xbb\xbf[0,1,0]", id="utf8-bom"),
        pytest.param("[0,1,0]".encode("utf-16"), id="utf16"),
        pytest.param("", id="empty"),
        pytest.param("not json", id="not-json"),
        pytest.param("[0,1,0", id="truncated"),
        pytest.param("[0,1,0] x", id="trailing-garbage"),
        pytest.param("[]", id="empty-array"),
        pytest.param("5", id="number"),
        pytest.param('"foo"', id="string"),
        pytest.param("null", id="null"),
        pytest.param("{}", id="empty-object"),
        pytest.param("[true,1,0]", id="bool-tag"),
        pytest.param("[0.0,1,0]", id="float-tag"),
        pytest.param('["0",1,0]', id="string-tag"),
        pytest.param("[-1]", id="negative-tag"),
        pytest.param("[5,1]", id="unknown-tag"),
        pytest.param("[0]", id="expiration-no-fields"),
        pytest.param("[0,1]", id="expiration-missing-not-before"),
        pytest.param("[0,1,0,0]", id="expiration-extra-field"),
        pytest.param("[0,true,0]", id="expiration-bool"),
        pytest.param("[0,1.5,0]", id="expiration-float"),
        pytest.param('[0,"200",0]', id="expiration-string"),
        pytest.param("[0,1e3,0]", id="expiration-exponent"),
        pytest.param("[0,NaN,0]", id="expiration-nan"),
        pytest.param("[0,Infinity,0]", id="expiration-infinity"),
        pytest.param("[0," + "9" * 5000 + ",0]", id="expiration-huge-integer"),
        pytest.param("[1]", id="project-name-missing"),
        pytest.param('[1,"foo"]', id="project-name-not-list"),
        pytest.param('[1,["foo",1]]', id="project-name-non-string"),
        pytest.param('[1,["foo"],"bar"]', id="project-name-extra-field"),
        pytest.param("[1,null]", id="project-name-null"),
        pytest.param("[2,[1]]", id="project-id-non-string"),
        pytest.param('[2,"a"]', id="project-id-not-list"),
        pytest.param('[2,["a"],["b"]]', id="project-id-extra-field"),
        pytest.param("[3,1]", id="user-integer"),
        pytest.param("[3,null]", id="user-null"),
        pytest.param('[3,["u"]]', id="user-list"),
        pytest.param('[3,"u","v"]', id="user-extra-field"),
        pytest.param('{"version":1,"permissions":"admin"}', id="legacy-unknown-permissions"),
        pytest.param('{"version":2,"permissions":"user"}', id="legacy-unknown-version"),
        pytest.param('{"version":true,"permissions":"user"}', id="legacy-bool-version"),
        pytest.param('{"version":"1","permissions":"user"}', id="legacy-string-version"),
        pytest.param('{"version":1,"permissions":"user","x":1}', id="legacy-extra-key"),
        pytest.param('{"version":1,"permissions":{"projects":"foo"}}', id="legacy-projects-str"),
        pytest.param('{"version":1,"permissions":{"projects":[1]}}', id="legacy-projects-int"),
        pytest.param(
            '{"version":1,"permissions":{"projects":["foo"],"x":1}}', id="legacy-projects-extra"
        ),
        pytest.param('{"exp":1}', id="legacy-exp-only"),
        pytest.param('{"exp":true,"nbf":0}', id="legacy-exp-bool"),
        pytest.param('{"exp":1,"nbf":"0"}', id="legacy-nbf-string"),
        pytest.param('{"exp":1,"nbf":0,"x":1}', id="legacy-exp-extra-key"),
        pytest.param('{"exp":1,"nbf":0,"exp":99999999999}', id="legacy-duplicate-key"),
        pytest.param('{"project_ids":"a"}', id="legacy-project-ids-str"),
        pytest.param('{"project_ids":[null]}', id="legacy-project-ids-null"),
        pytest.param("[" * 100_000 + "]" * 100_000, id="deep-nesting"),
    ],
)
def test_malformed_caveats_are_rejected(predicate: str | bytes) -> None:
    with pytest.raises(CaveatError) as raised:
        deserialize(predicate)
    assert raised.value.code == "token.caveat-malformed"
    assert str(raised.value).startswith("malformed caveat: ")


def test_oidc_publisher_caveat_is_unsupported() -> None:
    with pytest.raises(CaveatError, match="^unsupported caveat$"):
        deserialize('[4,"publisher-id",null]')


def test_caveat_error_is_a_token_error_and_does_not_echo_the_predicate() -> None:
    with pytest.raises(TokenError) as raised:
        deserialize('[3,"secret-looking-value","extra"]')
    assert "secret-looking-value" not in str(raised.value)


# --- check ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (99, "token is not yet valid"),
        (100, None),
        (199, None),
        (200, "token is expired"),
        (10_000, "token is expired"),
    ],
)
def test_expiration_boundaries(now: int, expected: str | None) -> None:
    assert check(Expiration(expires_at=200, not_before=100), context(now=now)) == expected


def test_project_name() -> None:
    caveat = ProjectName(normalized_names=("foo", "baz"))
    assert check(caveat, context(project_name="foo")) is None
    assert check(caveat, context(project_name="baz")) is None
    assert (
        check(caveat, context(project_name="bar"))
        == "project-scoped token is not valid for project: 'bar'"
    )
    assert (
        check(caveat, context(project_name=None, project_id=None))
        == "project-scoped token used outside of a project context"
    )


def test_project_id_requires_an_existing_project_with_a_listed_id() -> None:
    caveat = ProjectID(project_ids=(PROJECT_ID,))
    assert check(caveat, context()) is None
    assert (
        check(caveat, context(project_id="other-id"))
        == "project-scoped token is not valid for project: 'foo'"
    )
    # The project does not exist yet (first upload creates it): a ProjectID token can't do that.
    assert (
        check(caveat, context(project_name="new", project_id=None))
        == "project-scoped token is not valid for project: 'new'"
    )


def test_request_user() -> None:
    assert check(RequestUser(user_id=USER_ID), context()) is None
    assert (
        check(RequestUser(user_id=USER_ID), context(user_id="someone-else"))
        == "token is not valid for this user"
    )


def test_permissions_granted_to_api_tokens() -> None:
    assert PERMISSIONS == frozenset({"upload"})
    assert check_permission(context()) is None
    assert (
        check_permission(context(permission="manage"))
        == "API tokens are not valid for permission: manage"
    )


# --- properties -----------------------------------------------------------------------------

caveat_strategy: st.SearchStrategy[Caveat] = st.one_of(
    st.builds(Expiration, expires_at=st.integers(), not_before=st.integers()),
    st.builds(ProjectName, normalized_names=st.lists(st.text()).map(tuple)),
    st.builds(ProjectID, project_ids=st.lists(st.text()).map(tuple)),
    st.builds(RequestUser, user_id=st.text()),
)


@given(caveat_strategy)
def test_serialize_deserialize_round_trip(caveat: Caveat) -> None:
    predicate = serialize(caveat)
    assert deserialize(predicate) == caveat
    assert deserialize(predicate.encode("utf-8")) == caveat
    # The way pypitoken writes predicates (spaces after separators) parses the same.
    assert deserialize(json.dumps(json.loads(predicate))) == caveat
    assert deserialize(json.dumps(json.loads(predicate), indent=2)) == caveat


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=10,
)


@given(st.one_of(st.text(), st.binary(), json_values.map(json.dumps)))
def test_deserialize_only_ever_raises_caveat_error(predicate: str | bytes) -> None:
    try:
        deserialize(predicate)
    except CaveatError:
        pass


@given(st.integers(min_value=0, max_value=6), json_values)
def test_arrays_with_a_known_tag_and_random_fields_parse_or_raise_caveat_error(
    tag: int, fields: object
) -> None:
    items = [tag, *fields] if isinstance(fields, list) else [tag, fields]
    try:
        caveat = deserialize(json.dumps(items))
    except CaveatError:
        return
    assert caveat is not None
    assert json.loads(serialize(caveat)) == items
