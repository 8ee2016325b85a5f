"""Project names (bastion.core.names) and versions (bastion.core.versions): P2, P3, P105, P107,
and the names a new project may not take (stdlib, prohibited, look-alikes)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.core.names import (
    PROHIBITED_NAMES,
    confusable_key,
    is_prohibited_name,
    is_stdlib_name,
    is_valid_name,
    normalize_name,
)
from bastion.core.versions import InvalidVersionText, canonical_version, parse_version

NORMALIZED = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*\Z")

valid_names = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,30}[A-Za-z0-9])?", fullmatch=True)


@pytest.mark.parametrize("name", ["a", "Z", "0", "foo", "Foo.Bar_baz-9", "a-b", "a__b"])
def test_valid_names(name: str) -> None:
    assert is_valid_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "-foo",
        "foo.",
        "_foo",
        "foo\n",  # \Z, not $: a trailing newline is invalid
        "fo o",
        "fóo",
        "\u017foo",  # LATIN SMALL LETTER LONG S matches [A-Z] under IGNORECASE without ASCII
        "\u212aoo",  # KELVIN SIGN, likewise; it would normalize to "koo"
        "foo/bar",
    ],
)
def test_invalid_names(name: str) -> None:
    assert not is_valid_name(name)


def test_normalize_name_examples() -> None:
    assert normalize_name("FrIeNdLy-._.-bArD") == "friendly-bard"
    assert normalize_name("Friendly_Bard") == "friendly-bard"
    assert normalize_name("foo.bar") == "foo-bar"


@given(st.text())
def test_normalize_name_is_idempotent(name: str) -> None:
    once = normalize_name(name)
    assert normalize_name(once) == once


@given(valid_names)
def test_valid_names_normalize_to_the_canonical_form(name: str) -> None:
    assert is_valid_name(name)
    assert NORMALIZED.match(normalize_name(name))


@st.composite
def name_and_variant(draw: st.DrawFn) -> tuple[str, str]:
    """A valid name and a spelling of it with other case and other separator runs."""
    name = draw(valid_names)
    pieces = re.split(r"[-_.]+", name)
    separators = st.text(alphabet="-_.", min_size=1, max_size=3)
    variant = pieces[0]
    for piece in pieces[1:]:
        variant += draw(separators) + piece
    flips = draw(st.lists(st.booleans(), min_size=len(variant), max_size=len(variant)))
    variant = "".join(c.swapcase() if flip else c for c, flip in zip(variant, flips, strict=True))
    return name, variant


@given(name_and_variant())
def test_case_and_separator_variants_normalize_equal(pair: tuple[str, str]) -> None:
    name, variant = pair
    assert is_valid_name(variant)
    assert normalize_name(variant) == normalize_name(name)


def test_parse_version_normalizes() -> None:
    assert str(parse_version("V1.0-Alpha.1")) == "1.0a1"
    assert str(parse_version("1.01")) == "1.1"


def test_parse_version_error_is_a_value_error_with_a_message() -> None:
    with pytest.raises(ValueError, match=r"'not a version' is not a valid PEP 440 version\."):
        parse_version("not a version")
    with pytest.raises(InvalidVersionText):
        parse_version("1.0\x00")


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("1.0", "1"), ("1.0.0", "1"), ("1.0.1", "1.0.1"), ("2.0rc1", "2rc1"), ("1!1.0", "1!1")],
)
def test_canonical_version(text: str, canonical: str) -> None:
    assert canonical_version(parse_version(text)) == canonical


# -- names a new project may not take (issue item 6) ------------------------------------------


@pytest.mark.parametrize("name", ["asyncio", "AsyncIO", "email", "xml", "tomllib", "os"])
def test_stdlib_names(name: str) -> None:
    assert is_stdlib_name(name)


@pytest.mark.parametrize("name", ["requests", "async-io", "emails", "demo", "thread"])
def test_not_stdlib_names(name: str) -> None:
    # "_thread" is a module, but normalization keeps the underscore (as "-").
    assert not is_stdlib_name(name)


def test_prohibited_names_are_normalized_and_matched_after_normalization() -> None:
    assert all(normalize_name(name) == name for name in PROHIBITED_NAMES)
    assert is_prohibited_name("Python")
    assert is_prohibited_name("requirements.txt")
    assert is_prohibited_name("Setup_Py")
    assert not is_prohibited_name("pip")
    assert not is_prohibited_name("python-dateutil")
    assert is_prohibited_name("custom", frozenset({"custom"}))


@pytest.mark.parametrize(
    "variant",
    [
        "requests",
        "Requests",
        "Req_uests",
        "re.quests",
        "requ3sts",
        "reque5ts",
        "REQU3STS",
        "r-e-q-u-e-s-t-s",
        "ｒｅｑｕｅｓｔｓ",
        "r\u0435quests",
        "reqüests",
    ],  # fmt: skip
)
def test_look_alikes_of_requests_collide(variant: str) -> None:
    assert confusable_key(variant) == confusable_key("requests")


@pytest.mark.parametrize(
    ("first", "second"),
    [("pil1ow", "pillow"), ("django", "djang0"), ("flask", "fiask"), ("numpy", "num-py")],
)
def test_pypi_ultranormalize_collisions(first: str, second: str) -> None:
    # PyPI maps l/i/1 together and o/0 together, after dropping separators.
    assert confusable_key(first) == confusable_key(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [("requests", "request"), ("requests", "reqeusts"), ("py4j", "pyaj"), ("numpy", "numba")],
)
def test_different_names_do_not_collide(first: str, second: str) -> None:
    # Missing letters and transpositions are typos, out of scope; 4 -> a is not mapped.
    assert confusable_key(first) != confusable_key(second)


@given(st.text())
def test_confusable_key_is_idempotent(text: str) -> None:
    key = confusable_key(text)
    assert confusable_key(key) == key


@given(name_and_variant())
def test_case_and_separator_variants_share_a_confusable_key(pair: tuple[str, str]) -> None:
    name, variant = pair
    assert confusable_key(variant) == confusable_key(name)


@given(valid_names)
def test_confusable_key_of_a_valid_name_is_lowercase_ascii_without_separators(name: str) -> None:
    key = confusable_key(name)
    assert re.fullmatch(r"[a-z0-9]*", key)
    assert not set(key) & set("01i35")
