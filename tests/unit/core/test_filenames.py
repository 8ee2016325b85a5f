"""Step 1 of distribution validation: the filename (P85, P86, P93, P106)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

from bastion.core.dists import DistributionRejected, Limits, parse_filename
from bastion.core.names import normalize_name


def codes_for(filename: str, limits: Limits | None = None) -> tuple[str, ...]:
    with pytest.raises(DistributionRejected) as caught:
        parse_filename(filename, limits=limits)
    return tuple(caught.value.codes)


def test_plain_wheel() -> None:
    parsed = parse_filename("demo-1.0-py3-none-any.whl")
    assert parsed.packagetype == "bdist_wheel"
    assert parsed.name == "demo"
    assert parsed.version == Version("1.0")
    assert (parsed.name_part, parsed.version_part) == ("demo", "1.0")
    assert parsed.python_version == "py3"
    assert parsed.tags == frozenset({"py3-none-any"})


def test_wheel_with_compressed_tags_and_build_number() -> None:
    parsed = parse_filename("foo_bar-2.0.post1-1build-py2.py3-none-any.whl")
    assert parsed.name == "foo-bar"
    assert parsed.name_part == "foo_bar"
    assert parsed.python_version == "py2.py3"
    assert parsed.tags == frozenset({"py2-none-any", "py3-none-any"})


def test_plain_sdist() -> None:
    parsed = parse_filename("foo_bar-1.0.0.tar.gz")
    assert parsed.packagetype == "sdist"
    assert parsed.name == "foo-bar"
    assert parsed.version_part == "1.0.0"
    assert parsed.python_version == "source"
    assert parsed.tags == frozenset()


@pytest.mark.parametrize(
    "filename",
    [
        "foo-1.0.zip",  # legacy sdist format (PEP 527)
        "foo-1.0.tar.bz2",
        "foo-1.0.tar",
        "foo-1.0-py3.8.egg",
        "foo-1.0.win32.exe",
        "foo-1.0-py3-none-any.WHL",
        "foo-1.0.TAR.GZ",
        "foo-1.0-py3-none-any.whl.zip",
        "",
    ],
)
def test_unsupported_types(filename: str) -> None:
    assert codes_for(filename) == ("dist.filename.unsupported-type",)


@pytest.mark.parametrize(
    "filename",
    [
        "foo-1.0-py3-none.whl",  # too few parts
        "foo-1.0-x1-py3-none-any.whl",  # build tag not starting with a digit
        "foo-notaversion-py3-none-any.whl",
        "foo__bar-1.0-py3-none-any.whl",
        "foo-1.0--none-any.whl",  # empty python tag
        "foo.tar.gz",  # no version
        "-1.0.tar.gz",  # no name
        "foo-notaversion.tar.gz",
        "_foo-1.0-py3-none-any.whl",  # not a valid project name
        "fóo-1.0-py3-none-any.whl",  # non-ASCII name part
        "foo bar-1.0.tar.gz",
    ],
)
def test_invalid_filenames(filename: str) -> None:
    assert codes_for(filename) == ("dist.filename.invalid",)


@pytest.mark.parametrize(
    "filename",
    [
        "foo/../../etc-1.0.tar.gz",  # path traversal
        "..\\foo-1.0.tar.gz",  # Windows separator
        "foo\x00-1.0.tar.gz",  # NUL truncation
        "foo\n-1.0.tar.gz",  # header/log injection
        "foo\x7f-1.0-py3-none-any.whl",  # DEL
        "foo\x85-1.0-py3-none-any.whl",  # C1 control (NEL)
    ],
)
def test_unsafe_characters(filename: str) -> None:
    assert codes_for(filename) == ("dist.filename.invalid",)


def test_too_long() -> None:
    limits = Limits(max_filename_length=20)
    assert parse_filename("demo-1.0.tar.gz", limits=limits).name == "demo"
    assert codes_for("a" * 10 + "-1.0-py3-none-any.whl", limits) == ("dist.filename.too-long",)


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("Foo-1.0-py3-none-any.whl", "foo-1.0-py3-none-any.whl"),
        ("foo.bar-1.0-py3-none-any.whl", "foo_bar-1.0-py3-none-any.whl"),
        ("foo-1.00-py3-none-any.whl", "foo-1.0-py3-none-any.whl"),
        ("foo-1.0.alpha1-py3-none-any.whl", "foo-1.0a1-py3-none-any.whl"),
        ("Foo-1.0.tar.gz", "foo-1.0.tar.gz"),
        ("foo-bar-1.0.tar.gz", "foo_bar-1.0.tar.gz"),
        ("foo-v1.0.tar.gz", "foo-1.0.tar.gz"),
        ("foo_bar-1.0RC1.tar.gz", "foo_bar-1.0rc1.tar.gz"),
    ],
)
def test_not_normalized(filename: str, expected: str) -> None:
    with pytest.raises(DistributionRejected) as caught:
        parse_filename(filename)
    (problem,) = caught.value.problems
    assert problem.code == "dist.filename.not-normalized"
    assert f"it should be {expected!r}" in problem.message


@pytest.mark.parametrize("filename", ["foo-1.0+abc.tar.gz", "foo-1.0+local.1-py3-none-any.whl"])
def test_local_versions_are_rejected(filename: str) -> None:
    with pytest.raises(DistributionRejected) as caught:
        parse_filename(filename)
    (problem,) = caught.value.problems
    assert problem.code == "dist.version.local"
    assert problem.field == "version"
    assert re.fullmatch(
        r"The use of local versions in '1\.0\+[a-z.0-9]+' is not allowed\.", str(problem)
    )


# -- properties ---------------------------------------------------------------------------------

names = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?", fullmatch=True)
numbers = st.integers(min_value=0, max_value=10_000)


@st.composite
def versions(draw: st.DrawFn) -> Version:
    text = ".".join(map(str, draw(st.lists(numbers, min_size=1, max_size=4))))
    if draw(st.booleans()):
        text = f"{draw(numbers)}!{text}"
    if draw(st.booleans()):
        text += draw(st.sampled_from(["a", "b", "rc"])) + str(draw(numbers))
    if draw(st.booleans()):
        text += f".post{draw(numbers)}"
    if draw(st.booleans()):
        text += f".dev{draw(numbers)}"
    return Version(text)


tag_parts = st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), min_size=1, max_size=3)


@given(names, versions(), tag_parts, tag_parts, tag_parts)
def test_wheel_filename_round_trip(
    name: str, version: Version, python: list[str], abi: list[str], platform: list[str]
) -> None:
    name_part = normalize_name(name).replace("-", "_")
    tag = "-".join(".".join(part) for part in (python, abi, platform))
    filename = f"{name_part}-{version}-{tag}.whl"
    parsed = parse_filename(filename)
    assert parsed.name == normalize_name(name)
    assert parsed.version == version
    assert (parsed.name_part, parsed.version_part) == (name_part, str(version))
    assert parsed.python_version == ".".join(python)
    assert len(parsed.tags) == len(set(python)) * len(set(abi)) * len(set(platform))


@given(names, versions())
def test_sdist_filename_round_trip(name: str, version: Version) -> None:
    name_part = normalize_name(name).replace("-", "_")
    parsed = parse_filename(f"{name_part}-{version}.tar.gz")
    assert parsed.name == normalize_name(name)
    assert parsed.version == version


# A "-" in the name part would change how the filename splits; other separators are fine,
# except "__", which packaging refuses outright in a wheel's name (dist.filename.invalid).
@given(
    names.filter(lambda name: "-" not in name and "__" not in name and name != name.upper()),
    versions(),
)
def test_unnormalized_spelling_names_the_normalized_filename(name: str, version: Version) -> None:
    normal = f"{normalize_name(name).replace('-', '_')}-{version}-py3-none-any.whl"
    spelled = f"{name.upper()}-{version}-py3-none-any.whl"
    with pytest.raises(DistributionRejected) as caught:
        parse_filename(spelled)
    (problem,) = caught.value.problems
    assert problem.code == "dist.filename.not-normalized"
    assert repr(normal) in problem.message


def test_a_doubled_underscore_in_a_wheel_name_is_invalid() -> None:
    # PEP 427 escapes runs of separators to one "_": packaging refuses "__" as no wheel's name.
    with pytest.raises(DistributionRejected) as caught:
        parse_filename("0__A-0-py3-none-any.whl")
    assert [problem.code for problem in caught.value.problems] == ["dist.filename.invalid"]
