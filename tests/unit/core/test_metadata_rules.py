"""Core metadata validation (bastion.core.dists.metadata, metadata_rules): what real files do
and must keep being accepted, and PyPI's rules on top of packaging's (P97-P104)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from bastion.core.dists import (
    SUPPORTED_METADATA_VERSIONS,
    DistributionRejected,
    ValidatedDistribution,
    validate_distribution,
)
from bastion.core.dists.errors import DistProblem
from bastion.core.dists.metadata import unfold_description
from bastion.core.dists.metadata_rules import address_problem, display_field, url_problem
from tests.fixtures.dists import wheel_members, write_wheel
from tests.fixtures.dists.rawzip import RawMember
from tests.unit.core.builders import MetadataValue, make_sdist, metadata_bytes


def wheel(tmp_path: Path, metadata: dict[str, MetadataValue], body: str | None = None) -> Path:
    return write_wheel(tmp_path, wheel_members(metadata=metadata, body=body))


def validate(path: Path) -> ValidatedDistribution:
    return validate_distribution(path, filename=path.name)


def problems(path: Path) -> list[tuple[str, str | None]]:
    with pytest.raises(DistributionRejected) as caught:
        validate(path)
    return [(problem.code, problem.field) for problem in caught.value.problems]


def test_supported_versions_follow_packaging() -> None:
    # packaging 26.x validates 2.6; 2.0 was never a real version.
    assert SUPPORTED_METADATA_VERSIONS == (
        "1.0", "1.1", "1.2", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6",
    )  # fmt: skip


def test_a_rich_2_4_wheel_is_accepted(tmp_path: Path) -> None:
    metadata: dict[str, MetadataValue] = {
        "Summary": "Everything at once",
        "Author-email": '"Doe, Jane" <jane@example.org>, Bob <bob@example.co.uk>',
        "Maintainer-email": "ops@例え.jp",
        "License-Expression": "MIT OR Apache-2.0",
        "License-File": ["LICENSE", "licenses/NOTICE.txt"],
        "Classifier": ["Programming Language :: Python :: 3", "Private :: Do Not Upload"],
        "Requires-Dist": ["requests>=2", "rich; extra == 'cli'", "tomli; python_version<'3.11'"],
        "Provides-Extra": ["cli", "dev-tools"],
        "Project-URL": [
            "Source, https://example.org/src",
            "Issue tracker, http://example.org:8080/i",
        ],
        "Home-page": "https://example.org",
        "Description-Content-Type": "text/markdown; charset=UTF-8; variant=GFM",
        "Dynamic": [],
    }
    licenses = [
        RawMember("demo-1.0.dist-info/licenses/LICENSE", b"MIT"),
        RawMember("demo-1.0.dist-info/licenses/licenses/NOTICE.txt", b"notice"),
    ]
    members = wheel_members(metadata=metadata, body="# Demo\n\n*markdown* body\n", extra=licenses)
    dist = validate(write_wheel(tmp_path, members))
    assert dist.metadata.license_files == ("LICENSE", "licenses/NOTICE.txt")


@pytest.mark.parametrize("metadata_version", ["2.1", "2.2", "2.3"])
def test_license_file_before_2_4_is_ignored(tmp_path: Path, metadata_version: str) -> None:
    # setuptools wrote License-File into 2.1/2.2 metadata; twine leaves it out of the form.
    metadata = {"Metadata-Version": metadata_version, "License-File": "LICENSE"}
    assert validate(wheel(tmp_path, metadata)).metadata.license_files == ("LICENSE",)


def test_unknown_filler_values_count_as_absent(tmp_path: Path) -> None:
    # Old setuptools wrote "UNKNOWN" for every missing field.
    metadata = {
        "Metadata-Version": "2.1",
        "Home-page": "UNKNOWN",
        "Author-email": "UNKNOWN",
        "License": "UNKNOWN",
        "Platform": "UNKNOWN",
    }
    assert validate(wheel(tmp_path, metadata)).metadata.home_page == "UNKNOWN"


def test_header_description_is_unfolded_before_rendering(tmp_path: Path) -> None:
    # Metadata 1.x put the description in a folded header (8-space continuation lines).
    description = "Title\n=====\n\nSome text.\n\n.. code-block:: python\n\n    x = 1\n"
    folded = description.replace("\n", "\n        ")
    content = metadata_bytes(overrides={"Metadata-Version": "1.2", "Description": folded})
    path = make_sdist(tmp_path, metadata=content)
    assert validate(path).metadata.description.rstrip() == description.rstrip()


def test_unfold_description_spec_style() -> None:
    assert unfold_description("first\n       |second\n       |  indented") == (
        "first\nsecond\n  indented"
    )
    assert unfold_description("single line ") == "single line"


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (
            {"Requires-Dist": ["foo>=", "bar @ https://x/bar.whl", "baz ="]},
            [
                ("dist.metadata.requirement", "Requires-Dist"),
                ("dist.metadata.direct-reference", "Requires-Dist"),
                ("dist.metadata.requirement", "Requires-Dist"),
            ],
        ),
        (
            {"Provides-Dist": "x @ file:///etc/passwd"},
            [("dist.metadata.direct-reference", "Provides-Dist")],
        ),
        ({"Provides-Extra": "Dev_Tools"}, [("dist.metadata.provides-extra", "Provides-Extra")]),
        (
            {"Metadata-Version": "2.2", "Provides-Extra": ["Dev_Tools", "dev-tools"]},
            [
                ("dist.metadata.provides-extra", "Provides-Extra"),
            ],
        ),
        (
            {"Project-URL": [", https://example.org", "Docs, ftp://example.org"]},
            [
                ("dist.metadata.url", "Project-URL"),
                ("dist.metadata.url", "Project-URL"),
            ],
        ),
        ({"Download-URL": "https:///no-host"}, [("dist.metadata.url", "Download-URL")]),
        ({"Home-page": "https://example.org/a b"}, [("dist.metadata.url", "Home-page")]),
        ({"Maintainer-email": "a@b"}, [("dist.metadata.email", "Maintainer-email")]),
        ({"Summary": "line one\n line two"}, [("dist.metadata.summary", "Summary")]),
        (
            {"Description-Content-Type": "text/html"},
            [("dist.metadata.content-type", "Description-Content-Type")],
        ),
        (
            {"Metadata-Version": "2.1", "Dynamic": "Summary"},
            [("dist.metadata.field-too-new", "Dynamic")],
        ),
        (
            {"Metadata-Version": "2.2", "Dynamic": "Unknown-Field"},
            [("dist.metadata.dynamic", "Dynamic")],
        ),
        (
            {"Metadata-Version": "2.5", "Import-Name": "not-an-identifier"},
            [("dist.metadata.import-name", "Import-Name")],
        ),
        ({"License-File": "../LICENSE"}, [("dist.metadata.license-file", "License-File")]),
    ],
)
def test_metadata_rules(
    tmp_path: Path, metadata: dict[str, MetadataValue], expected: list[tuple[str, str]]
) -> None:
    assert problems(wheel(tmp_path, metadata)) == expected


def test_every_classifier_problem_is_listed_with_the_replacement(tmp_path: Path) -> None:
    metadata = {"Classifier": ["Framework :: Django CMS :: 4.2", "Nope :: Nope"]}
    with pytest.raises(DistributionRejected) as caught:
        validate(wheel(tmp_path, metadata))
    assert [p.message for p in caught.value.problems] == [
        "The classifier 'Framework :: Django CMS :: 4.2' in METADATA is deprecated; use "
        "'Framework :: Django CMS :: 5.0' instead.",
        "'Nope :: Nope' in METADATA is not a valid trove classifier.",
    ]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("", "Title\n=\n\n.. bad::\n"),  # no content type: reStructuredText by default
        ("text/x-rst", "`unterminated"),
    ],
)
def test_description_that_does_not_render(tmp_path: Path, content_type: str, body: str) -> None:
    metadata = {"Description-Content-Type": content_type} if content_type else {}
    with pytest.raises(DistributionRejected) as caught:
        validate(wheel(tmp_path, metadata, body=body))
    (problem,) = caught.value.problems
    assert problem.code == "dist.metadata.description-render"
    assert problem.message.startswith(
        "The description in METADATA failed to render for 'text/x-rst'"
    )
    assert "\n" not in problem.message


@pytest.mark.parametrize("variant", ["", "; variant=GFM", "; variant=CommonMark"])
def test_markdown_that_renders_to_nothing_is_refused(tmp_path: Path, variant: str) -> None:
    # Only a link reference definition: the converter gives no HTML at all (readme-renderer's
    # render returns None, and PyPI refuses it).
    metadata = {"Description-Content-Type": "text/markdown" + variant}
    with pytest.raises(DistributionRejected) as caught:
        validate(wheel(tmp_path, metadata, body="[a]: https://example.org\n"))
    (problem,) = caught.value.problems
    assert problem.code == "dist.metadata.description-render"
    assert problem.message == ("The description in METADATA failed to render for 'text/markdown'.")


def test_a_remembered_verdict_is_the_same_verdict(tmp_path: Path) -> None:
    # The second file with a description is judged from the remembered verdict (the files of
    # one release share it): the refusal and its message stay the same, and a description that
    # differs by one character is judged on its own.
    bad = "Title\n=====\n\n.. not-a-directive::\n"
    first, second = (tmp_path / "a", tmp_path / "b")
    first.mkdir()
    second.mkdir()
    messages = []
    for directory in (first, second):
        with pytest.raises(DistributionRejected) as caught:
            validate(wheel(directory, {"Description-Content-Type": "text/x-rst"}, body=bad))
        messages.append([p.message for p in caught.value.problems])
    assert messages[0] == messages[1]
    assert "not-a-directive" in messages[0][0]
    good = bad.replace(".. not-a-directive::", "Plain text.")
    assert validate(wheel(tmp_path, {"Description-Content-Type": "text/x-rst"}, body=good))


@pytest.mark.parametrize(
    "content_type", ["text/plain", "text/markdown", "text/markdown; variant=CommonMark"]
)
def test_plain_and_markdown_descriptions_render(tmp_path: Path, content_type: str) -> None:
    body = "Title\n=\n\n.. not a directive in markdown::\n`unterminated"
    assert validate(wheel(tmp_path, {"Description-Content-Type": content_type}, body=body))


@pytest.mark.parametrize(
    ("value", "bad"),
    [
        ("jane@example.org", None),
        ("Jane Doe <jane@example.org>", None),
        ('"Doe, Jane" <jane@example.org>, bob@example.com', None),
        ("jane.doe+tag@sub.example.co.uk", None),
        ("ops@例え.jp", None),
        ("jane at example dot org", "jane"),
        ("Jane Doe", "Jane"),
        ("jane@localhost", "jane@localhost"),
        ("jane@example.123", "jane@example.123"),
        ("good@example.org, bad@", "good@example.org, bad@"),
        ("<>", "<>"),
        (", ".join(f"dev{i}@example.org" for i in range(20)), None),  # long: not remembered
        (", ".join(f"dev{i}@example.org" for i in range(20)) + ", a@localhost", "a@localhost"),
    ],
)
def test_address_problem(value: str, bad: str | None) -> None:
    for _ in range(2):  # found, then remembered (short lists)
        assert address_problem(value) == bad


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://example.org", True),
        ("http://example.org:8080/path?q=1#frag", True),
        ("HTTPS://EXAMPLE.ORG", True),
        ("ftp://example.org", False),
        ("javascript:alert(1)", False),
        ("https://", False),
        ("https://example.org:99999", False),
        ("https://exa mple.org", False),
        ("https://example.org\\@evil.com", False),
        ("//example.org", False),
    ],
)
def test_url_problem(url: str, ok: bool) -> None:
    assert (url_problem(url) is None) is ok


def test_display_field() -> None:
    assert display_field("requires-dist") == "Requires-Dist"
    assert display_field("home_page") == "Home-page"
    assert display_field("project-url") == "Project-URL"


@pytest.mark.parametrize("metadata_version", ["1.2", "2.1", "2.4", "9.9"])
@pytest.mark.parametrize(
    "content_type",
    [
        "text/markdown",
        "text/html",
        "text/plain; charset=latin-1",
        "text/markdown; variant=Nope",
        "text/plain; x*",
        "",
        "text/x-rst" + " " * 300,  # too long to be kept: judged each time
    ],
)
def test_description_content_type_verdict_is_packagings(
    metadata_version: str, content_type: str
) -> None:
    # The content type is judged apart from the rest and remembered; the problems must be
    # exactly those of packaging's whole-file check, every time.
    from packaging.metadata import InvalidMetadata, Metadata, RawMetadata

    from bastion.core.dists.metadata import _problem_for, _validate_with_packaging

    raw: RawMetadata = {
        "metadata_version": metadata_version,
        "name": "demo",
        "version": "1.0",
        "summary": "one line",
        "description_content_type": content_type,
    }

    def seen(problems: Iterable[DistProblem | None]) -> list[tuple[str, str, str | None]]:
        return [(p.code, p.message, p.field) for p in problems if p is not None]

    expected: list[tuple[str, str, str | None]] = []
    try:
        Metadata.from_raw(raw, validate=True)
    except ExceptionGroup as group:
        errors = [e for e in group.exceptions if isinstance(e, InvalidMetadata)]
        expected = seen(_problem_for(e, "METADATA") for e in sorted(errors, key=lambda e: e.field))
    for _ in range(2):  # judged, then remembered
        found: list[DistProblem] = []
        _validate_with_packaging(dict(raw), "METADATA", found)  # type: ignore[arg-type]
        assert seen(found) == expected
    if metadata_version == "2.4":
        codes = {p.code for p in found}
        valid = content_type.strip() in {"text/markdown", "text/x-rst"}
        assert ("dist.metadata.content-type" in codes) is not valid
