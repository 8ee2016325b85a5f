"""Minting, reading and verifying API tokens (bastion.security.macaroons).

Hostile tokens are built with pymacaroons directly: each says in one line what it attacks.
"""

from __future__ import annotations

import base64
import binascii

import pymacaroons
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymacaroons.utils import sign_first_party_caveat

from bastion.security.caveats import (
    Caveat,
    Expiration,
    ProjectID,
    ProjectName,
    RequestContext,
    RequestUser,
    check,
    is_project_caveat,
)
from bastion.security.errors import (
    CaveatError,
    TokenError,
    TokenFormatError,
    TokenInvalid,
    TokenSignatureInvalid,
)
from bastion.security.hashing import constant_time_equals
from bastion.security.macaroons import (
    PREFIX,
    authenticate,
    caveats_of,
    mint,
    parse,
    read_identifier,
    verify,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
TOKEN_ID = "7a1e2f3c-4b5d-4e6f-8a9b-0c1d2e3f4a5b"
USER_ID = "5f3c1a52-8a4e-4e3c-9d0f-2b1e6a7c9d10"
PROJECT_ID = "0b7e0a9c-3f1d-4b8e-a2c4-6d5e8f1a2b3c"
LOCATION = "bastion.example"


def context(**overrides: object) -> RequestContext:
    values: dict[str, object] = {
        "user_id": USER_ID,
        "project_name": "foo",
        "project_id": PROJECT_ID,
        "now": 1_000,
    }
    values.update(overrides)
    return RequestContext(**values)  # type: ignore[arg-type]


def token_with(*caveats: Caveat, key: bytes = KEY) -> str:
    return mint(key=key, identifier=TOKEN_ID, location=LOCATION, caveats=caveats)


def raw_token(*predicates: bytes, key: bytes = KEY, version: int = pymacaroons.MACAROON_V2) -> str:
    """A correctly signed token whose caveats are arbitrary bytes (bypassing mint's codec)."""
    macaroon = pymacaroons.Macaroon(
        location=LOCATION, identifier=TOKEN_ID, key=key, version=version
    )
    for predicate in predicates:
        macaroon.caveats.append(pymacaroons.Caveat(caveat_id=predicate, version=version))
        macaroon.signature = sign_first_party_caveat(
            binascii.unhexlify(macaroon.signature_bytes), predicate
        )
    return f"{PREFIX}-{macaroon.serialize()}"


def reasons_of(token: str, **kwargs: object) -> tuple[str, ...]:
    with pytest.raises(TokenInvalid) as raised:
        verify(token, key=KEY, **kwargs)  # type: ignore[arg-type]
    # A chain that does not verify is its own class: whoever presents it is anonymous.
    expected = TokenSignatureInvalid if raised.value.code == "token.signature" else TokenInvalid
    assert type(raised.value) is expected
    return raised.value.reasons


# --- round trip -----------------------------------------------------------------------------


def test_mint_read_verify_round_trip() -> None:
    token = token_with(RequestUser(user_id=USER_ID))
    assert token.startswith("bastion-")
    assert read_identifier(token) == TOKEN_ID
    assert caveats_of(token) == (RequestUser(user_id=USER_ID),)
    verify(token, key=KEY, context=context())
    verify(token, key=KEY, context=context(project_name=None, project_id=None))


def test_surrounding_whitespace_is_ignored() -> None:
    token = token_with(RequestUser(user_id=USER_ID))
    assert read_identifier(f"  {token}\n") == TOKEN_ID
    verify(f"\t{token} ", key=KEY, context=context())


def test_hand_built_token_matches_mint() -> None:
    caveats = (RequestUser(user_id=USER_ID), Expiration(expires_at=2_000, not_before=0))
    assert raw_token(b'[3,"' + USER_ID.encode() + b'"]', b"[0,2000,0]") == token_with(*caveats)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"key": b"short"},
        {"key": KEY + b"x"},
        {"identifier": ""},
        {"location": ""},
    ],
)
def test_mint_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    arguments: dict[str, object] = {
        "key": KEY,
        "identifier": TOKEN_ID,
        "location": LOCATION,
        "caveats": (),
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError):
        mint(**arguments)  # type: ignore[arg-type]


# --- caveats enforced -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (999, ("token is not yet valid",)),
        (1_000, None),
        (1_899, None),
        (1_900, ("token is expired",)),
    ],
)
def test_expiry_boundaries(now: int, expected: tuple[str, ...] | None) -> None:
    token = token_with(RequestUser(user_id=USER_ID), Expiration(expires_at=1_900, not_before=1_000))
    if expected is None:
        verify(token, key=KEY, context=context(now=now))
    else:
        assert reasons_of(token, context=context(now=now)) == expected


def test_project_scoped_token() -> None:
    token = token_with(ProjectName(normalized_names=("foo",)), ProjectID(project_ids=(PROJECT_ID,)))
    verify(token, key=KEY, context=context())
    with pytest.raises(TokenInvalid) as raised:
        verify(token, key=KEY, context=context(project_name="bar", project_id="other"))
    assert raised.value.reasons == ("project-scoped token is not valid for project: 'bar'",)
    assert str(raised.value) == (
        "Invalid API Token: project-scoped token is not valid for project: 'bar'"
    )


def test_user_mismatch() -> None:
    token = token_with(RequestUser(user_id=USER_ID))
    assert reasons_of(token, context=context(user_id="someone-else")) == (
        "token is not valid for this user",
    )


def test_wrong_key() -> None:
    token = token_with(RequestUser(user_id=USER_ID), key=OTHER_KEY)
    assert reasons_of(token, context=context()) == ("signatures do not match",)


def test_permission_outside_api_token_permissions_fails_every_token() -> None:
    assert reasons_of(token_with(), context=context(permission="manage")) == (
        "API tokens are not valid for permission: manage",
    )


def test_stored_caveats_are_enforced() -> None:
    # The token was minted user-wide, but the server's row says it is scoped to "foo".
    token = token_with(RequestUser(user_id=USER_ID))
    stored = (ProjectName(normalized_names=("foo",)),)
    verify(token, key=KEY, context=context(), stored_caveats=stored)
    assert reasons_of(token, context=context(project_name="bar"), stored_caveats=stored) == (
        "project-scoped token is not valid for project: 'bar'",
    )


def test_stored_caveats_repeating_embedded_ones_report_each_reason_once() -> None:
    caveats = (RequestUser(user_id=USER_ID),)
    assert reasons_of(
        token_with(*caveats), context=context(user_id="other"), stored_caveats=caveats
    ) == ("token is not valid for this user",)


def test_all_reasons_are_collected() -> None:
    token = token_with(
        RequestUser(user_id=USER_ID),
        Expiration(expires_at=10, not_before=0),
        ProjectName(normalized_names=("foo",)),
    )
    reasons = reasons_of(
        token,
        context=context(user_id="other", project_name="bar", permission="manage"),
        stored_caveats=(ProjectID(project_ids=("nope",)),),
    )
    assert set(reasons) == {
        "API tokens are not valid for permission: manage",
        "token is not valid for this user",
        "token is expired",
    }


def test_a_bad_signature_is_the_only_reason_given() -> None:
    # A forged token proves nothing: its caveats are not evaluated or reported.
    token = token_with(
        RequestUser(user_id=USER_ID), Expiration(expires_at=10, not_before=0), key=OTHER_KEY
    )
    with pytest.raises(TokenSignatureInvalid) as raised:
        verify(token, key=KEY, context=context(user_id="other", permission="manage"))
    assert raised.value.reasons == ("signatures do not match",)
    assert raised.value.code == "token.signature"


def test_a_changed_last_character_does_not_verify() -> None:
    token = token_with(RequestUser(user_id=USER_ID))
    body = token.partition("-")[2]
    forged = f"{PREFIX}-{body[:-2]}{'A' if body[-2] != 'A' else 'B'}{body[-1]}"
    assert read_identifier(forged) == TOKEN_ID
    with pytest.raises(TokenSignatureInvalid):
        authenticate(forged, key=KEY, user_id=USER_ID, permission="upload", now=1_000)


def test_a_token_read_once_verifies_as_the_token_itself() -> None:
    # The upload endpoint reads the token once: its identifier to find the key, then the same
    # reading is verified. Reading is not verifying: a forged chain still fails.
    token = token_with(RequestUser(user_id=USER_ID), Expiration(expires_at=2_000, not_before=0))
    parsed = parse(f" {token}\n")
    assert parsed.identifier == TOKEN_ID
    kwargs: dict[str, object] = {"user_id": USER_ID, "permission": "upload", "now": 1_000}
    assert authenticate(parsed, key=KEY, **kwargs) == authenticate(token, key=KEY, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(TokenSignatureInvalid):
        authenticate(parsed, key=OTHER_KEY, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(TokenInvalid) as raised:
        authenticate(parse(token), key=KEY, **{**kwargs, "now": 3_000})  # type: ignore[arg-type]
    assert type(raised.value) is TokenInvalid
    with pytest.raises(TokenFormatError):
        parse("bastion-not a token")


# --- two steps: authenticate (before the body), then the project (once the form names it) ---


def test_authenticate_defers_project_caveats() -> None:
    token = token_with(
        RequestUser(user_id=USER_ID),
        ProjectName(normalized_names=("foo",)),
        ProjectID(project_ids=(PROJECT_ID,)),
    )
    scope = authenticate(token, key=KEY, user_id=USER_ID, permission="upload", now=1_000)
    assert set(scope.caveats) == {
        ProjectName(normalized_names=("foo",)),
        ProjectID(project_ids=(PROJECT_ID,)),
    }
    scope.check(project_name="foo", project_id=PROJECT_ID)
    with pytest.raises(TokenInvalid) as raised:
        scope.check(project_name="bar", project_id=None)
    assert raised.value.reasons == ("project-scoped token is not valid for project: 'bar'",)


def test_authenticate_defers_stored_project_caveats_too() -> None:
    token = token_with(RequestUser(user_id=USER_ID))
    stored = (RequestUser(user_id=USER_ID), ProjectName(normalized_names=("foo",)))
    scope = authenticate(
        token, key=KEY, user_id=USER_ID, permission="upload", now=1_000, stored_caveats=stored
    )
    scope.check(project_name="foo", project_id=None)
    with pytest.raises(TokenInvalid):
        scope.check(project_name="bar", project_id=None)


@pytest.mark.parametrize(
    ("caveat", "kwargs", "reason"),
    [
        (Expiration(expires_at=900, not_before=0), {}, "token is expired"),
        (Expiration(expires_at=2_000, not_before=1_500), {}, "token is not yet valid"),
        (RequestUser(user_id=USER_ID), {"user_id": "other"}, "token is not valid for this user"),
    ],
)
def test_authenticate_checks_what_does_not_depend_on_the_project(
    caveat: Caveat, kwargs: dict[str, str], reason: str
) -> None:
    arguments: dict[str, object] = {"user_id": USER_ID, "permission": "upload", "now": 1_000}
    arguments.update(kwargs)
    with pytest.raises(TokenInvalid) as raised:
        authenticate(token_with(caveat), key=KEY, **arguments)  # type: ignore[arg-type]
    assert raised.value.reasons == (reason,)
    assert not isinstance(raised.value, TokenSignatureInvalid)


def test_messages_never_contain_the_token_or_the_key() -> None:
    token = token_with(RequestUser(user_id=USER_ID), key=OTHER_KEY)
    body = token.partition("-")[2]
    with pytest.raises(TokenInvalid) as raised:
        verify(token, key=KEY, context=context(user_id="other"))
    for secret in (body, KEY.hex(), OTHER_KEY.hex()):
        assert secret not in str(raised.value)
        assert secret not in repr(raised.value.args)


# --- malformed and hostile tokens -----------------------------------------------------------


@pytest.mark.parametrize(
    "predicate",
    [
        pytest.param(b"[9,1]", id="unknown-tag"),
        pytest.param(b"[]", id="empty-array"),
        pytest.param(b'"user"', id="non-array"),
        pytest.param(b"[0,true,0]", id="expiration-bool"),
        pytest.param(b'[1,"foo"]', id="project-name-not-list"),
        pytest.param(b"[2,[1]]", id="project-id-int"),
        pytest.param(b"[3,1]", id="user-int"),
        pytest.param(b'[3,"u","extra"]', id="extra-field"),
        pytest.param(b"{not json", id="invalid-json"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
    ],
)
def test_malformed_caveat_fails_the_token(predicate: bytes) -> None:
    token = raw_token(predicate)
    reasons = reasons_of(token, context=context())
    assert len(reasons) == 1
    assert reasons[0].startswith("malformed caveat: ")
    with pytest.raises(CaveatError):
        caveats_of(token)


def test_oidc_publisher_caveat_fails_as_unsupported() -> None:
    assert reasons_of(raw_token(b'[4,"publisher"]'), context=context()) == ("unsupported caveat",)


def test_legacy_caveats_are_honoured() -> None:
    # {"version":1,"permissions":"user"} restricts nothing beyond the user's own rights.
    noop = raw_token(b'{"version": 1, "permissions": "user"}')
    verify(noop, key=KEY, context=context(project_name="anything"))
    assert caveats_of(noop) == ()
    scoped = raw_token(b'{"version": 1, "permissions": {"projects": ["Foo"]}}')
    verify(scoped, key=KEY, context=context(project_name="foo"))
    assert reasons_of(scoped, context=context(project_name="bar")) == (
        "project-scoped token is not valid for project: 'bar'",
    )
    dated = raw_token(b'{"exp": 1100, "nbf": 900}')
    verify(dated, key=KEY, context=context(now=1_000))
    assert reasons_of(dated, context=context(now=1_100)) == ("token is expired",)
    by_id = raw_token(b'{"project_ids": ["' + PROJECT_ID.encode() + b'"]}')
    verify(by_id, key=KEY, context=context())
    assert reasons_of(by_id, context=context(project_id="other")) == (
        "project-scoped token is not valid for project: 'foo'",
    )


def test_third_party_caveat_fails_the_token() -> None:
    # A third-party caveat would need a discharge macaroon; bastion never issues them.
    macaroon = pymacaroons.Macaroon(
        location=LOCATION, identifier=TOKEN_ID, key=KEY, version=pymacaroons.MACAROON_V2
    )
    macaroon.add_third_party_caveat("elsewhere.example", b"k" * 32, "caveat-id")
    token = f"{PREFIX}-{macaroon.serialize()}"
    assert reasons_of(token, context=context()) == ("third-party caveats are not supported",)
    with pytest.raises(CaveatError):
        caveats_of(token)


def test_version_1_macaroon_is_not_a_bastion_token() -> None:
    # The format is fixed to macaroon v2; v1's parser is a separate attack surface.
    token = raw_token(b"[0,2000,0]", version=pymacaroons.MACAROON_V1)
    with pytest.raises(TokenFormatError):
        read_identifier(token)


def _b64_bytes(body: str) -> bytes:
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def _same_except_location(body: str, other_body: str) -> bool:
    original = pymacaroons.Macaroon.deserialize(body)
    other = pymacaroons.Macaroon.deserialize(other_body)
    return (
        original.location != other.location
        and original.identifier_bytes == other.identifier_bytes
        and original.signature_bytes == other.signature_bytes
        and [c.caveat_id_bytes for c in original.caveats]
        == [c.caveat_id_bytes for c in other.caveats]
    )


def test_every_single_character_tampering_is_rejected() -> None:
    token = token_with(RequestUser(user_id=USER_ID), ProjectName(normalized_names=("foo",)))
    body = token.partition("-")[2]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    location_only = 0
    for index, char in enumerate(body):
        for replacement in (alphabet[(alphabet.index(char) + 1) % 64], "!"):
            tampered_body = body[:index] + replacement + body[index + 1 :]
            tampered = f"{PREFIX}-{tampered_body}"
            if replacement != "!" and _b64_bytes(tampered_body) == _b64_bytes(body):
                continue  # only the unused low bits of the last character changed
            try:
                verify(tampered, key=KEY, context=context())
            except TokenError:
                continue
            # A macaroon's location is an unsigned hint (it is not in the HMAC chain, on PyPI
            # either): only a change confined to it may still verify.
            assert _same_except_location(body, tampered_body), f"accepted tampering at {index}"
            location_only += 1
    assert location_only <= len(LOCATION) * 2


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda body: f"pypi-{body}", id="pypi-prefix"),
        pytest.param(lambda body: f"Bastion-{body}", id="capitalised-prefix"),
        pytest.param(lambda body: f"bastionx-{body}", id="longer-prefix"),
        pytest.param(lambda body: f"bastion_{body}", id="underscore-separator"),
        pytest.param(lambda body: f"bastion{body}", id="no-separator"),
        pytest.param(lambda body: body, id="no-prefix"),
        pytest.param(lambda body: "bastion-", id="empty-body"),
        pytest.param(lambda body: "bastion", id="prefix-only"),
        pytest.param(lambda body: "", id="empty"),
        pytest.param(lambda body: "   ", id="whitespace"),
        pytest.param(lambda body: f"bastion-{body[:20]}", id="truncated"),
        pytest.param(lambda body: "bastion-AAAA", id="garbage"),
        pytest.param(lambda body: f"bastion-{body}!", id="bad-character"),
        pytest.param(lambda body: f"bastion-{body[:10]} {body[10:]}", id="inner-space"),
        pytest.param(lambda body: f"bastion-{body}\x00", id="nul"),
    ],
)
def test_malformed_tokens_are_format_errors(make_token: object) -> None:
    body = token_with(RequestUser(user_id=USER_ID)).partition("-")[2]
    token = make_token(body)  # type: ignore[operator]
    for operation in (
        read_identifier,
        caveats_of,
        lambda t: verify(t, key=KEY, context=context()),
    ):
        with pytest.raises(TokenFormatError) as raised:
            operation(token)
        assert raised.value.code == "token.malformed"
        assert body not in str(raised.value)


def test_identifier_that_is_not_utf8_is_a_format_error() -> None:
    macaroon = pymacaroons.Macaroon(
        location=LOCATION, identifier=b"\xff\xfe", key=KEY, version=pymacaroons.MACAROON_V2
    )
    with pytest.raises(TokenFormatError):
        read_identifier(f"{PREFIX}-{macaroon.serialize()}")


# --- properties -----------------------------------------------------------------------------

USERS = (USER_ID, "other-user")
PROJECT_NAMES = ("foo", "bar", "baz")
PROJECT_IDS = ("id-foo", "id-bar")
small_time = st.integers(min_value=0, max_value=20)

caveat_strategy: st.SearchStrategy[Caveat] = st.one_of(
    st.builds(Expiration, expires_at=small_time, not_before=small_time),
    st.builds(
        ProjectName,
        normalized_names=st.lists(st.sampled_from(PROJECT_NAMES), max_size=3).map(tuple),
    ),
    st.builds(ProjectID, project_ids=st.lists(st.sampled_from(PROJECT_IDS), max_size=2).map(tuple)),
    st.builds(RequestUser, user_id=st.sampled_from(USERS)),
)
context_strategy = st.builds(
    RequestContext,
    user_id=st.sampled_from(USERS),
    project_name=st.none() | st.sampled_from(PROJECT_NAMES),
    project_id=st.none() | st.sampled_from(PROJECT_IDS),
    now=small_time,
    permission=st.sampled_from(("upload", "upload", "manage")),
)


def _reasons(
    token: str, request: RequestContext, stored: tuple[Caveat, ...] = ()
) -> frozenset[str]:
    try:
        verify(token, key=KEY, context=request, stored_caveats=stored)
    except TokenInvalid as error:
        return frozenset(error.reasons)
    return frozenset()


@given(
    base=st.lists(caveat_strategy, max_size=3).map(tuple),
    extra=caveat_strategy,
    request=context_strategy,
)
def test_adding_any_caveat_never_widens_access(
    base: tuple[Caveat, ...], extra: Caveat, request: RequestContext
) -> None:
    base_reasons = _reasons(token_with(*base), request)
    extra_reason = check(extra, request)
    # Attenuating the token itself (what a user does offline) ...
    embedded = _reasons(token_with(*base, extra), request)
    # ... or adding the caveat server-side to the stored row.
    stored = _reasons(token_with(*base), request, stored=(extra,))
    # Project reasons are only reached once everything else holds (authenticate, then the
    # project), so an attenuated token may report an earlier reason instead of them.
    first_step = frozenset(r for r in base_reasons if "project" not in r)
    for attenuated in (embedded, stored):
        assert first_step <= attenuated
        if extra_reason is not None and not is_project_caveat(extra):
            assert extra_reason in attenuated
        if not attenuated:
            assert not base_reasons and extra_reason is None


@given(st.text() | st.text().map(lambda s: f"{PREFIX}-{s}"))
def test_arbitrary_strings_only_ever_raise_token_errors(token: str) -> None:
    with pytest.raises(TokenError):
        verify(token, key=KEY, context=context())


def test_constant_time_equals() -> None:
    assert constant_time_equals("abc", "abc")
    assert constant_time_equals(b"abc", "abc")
    assert constant_time_equals("ünïcode", "ünïcode".encode())
    assert not constant_time_equals("abc", "abd")
    assert not constant_time_equals(b"abc", b"abcd")
