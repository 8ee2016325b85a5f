"""The upload form's core-metadata fields against the file (bastion.core.dists.form_fields)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.core.dists import DeclaredFields, DistributionRejected, validate_distribution
from tests.fixtures.dists import wheel_members, write_wheel
from tests.unit.core.builders import MetadataValue

METADATA: dict[str, MetadataValue] = {
    "Metadata-Version": "2.5",
    "Summary": "A demonstration distribution",
    "Keywords": "demo,example",
    "Author-email": "Jane <jane@example.org>",
    "Requires-Python": ">=3.9,<4",
    "Classifier": ["Programming Language :: Python :: 3", "Typing :: Typed"],
    "Requires-Dist": ["requests>=2", "rich; extra == 'cli'"],
    "Provides-Extra": "cli",
    "Project-URL": ["Source, https://example.org/src", "Docs, https://example.org/docs"],
    "Import-Name": "demo",
    "Description-Content-Type": "text/markdown; charset=UTF-8",
}
BODY = "# Demo\r\n\r\nLong text.   \r\n"


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    return write_wheel(tmp_path, wheel_members(metadata=METADATA, body=BODY))


def declared(**fields: list[str]) -> DeclaredFields:
    return DeclaredFields(name="demo", version="1.0", fields=fields)


def test_what_twine_and_uv_send_matches(wheel: Path) -> None:
    form = declared(
        metadata_version=["2.1"],  # not compared: the file's version is authoritative
        summary=["A demonstration distribution"],
        keywords=["demo, example"],
        author_email=["Jane <jane@example.org>"],
        requires_python=["<4, >=3.9"],  # another order and spacing
        classifiers=["Typing :: Typed", "Programming Language :: Python :: 3"],
        requires_dist=['rich ; extra == "cli"', "requests >= 2"],
        provides_extra=["CLI"],
        project_urls=["Docs,https://example.org/docs", "Source, https://example.org/src"],
        import_names=["demo"],  # uv's plural (P65)
        description=["# Demo\n\nLong text.\n"],  # other line endings, no trailing spaces
        description_content_type=["text/markdown;charset=UTF-8"],
        home_page=[""],  # "" counts as absent (P66)
        license=["UNKNOWN"],  # so does the distutils filler
        sha256_digest=["0" * 64],  # not core metadata: ignored
        comment=["anything"],
        unknown_field=["ignored, as PyPI ignores unknown fields"],
    )
    assert validate_distribution(wheel, filename=wheel.name, declared=form).name == "demo"


@pytest.mark.parametrize(
    "fields",
    [
        {"summary": ["Something else"]},
        {"classifiers": ["Programming Language :: Python :: 3"]},  # one missing
        {"requires_dist": ["requests>=2", "rich; extra == 'cli'", "evil"]},  # one added
        {"project_urls": ["Source, https://evil.example/src", "Docs, https://example.org/docs"]},
        {"import_name": ["other"]},  # PyPI's singular spelling
        {"home_page": ["https://example.org"]},  # absent from the file
        {"description": ["Another description"]},
        {"keywords": ["demo"]},
        {"requires_python": [">=3.8"]},
        {"summary": ["A demonstration distribution", "Two values"]},
    ],
)
def test_disagreeing_form_field(wheel: Path, fields: dict[str, list[str]]) -> None:
    with pytest.raises(DistributionRejected) as caught:
        validate_distribution(wheel, filename=wheel.name, declared=declared(**fields))
    (problem,) = caught.value.problems
    assert problem.code == "dist.form.field-mismatch"
    assert problem.field == next(iter(fields))
    assert problem.message.startswith(f"Field {next(iter(fields))!r} in the upload form (")
    assert "does not match METADATA" in problem.message


def test_fields_are_not_compared_without_metadata(tmp_path: Path) -> None:
    # No METADATA: only the missing file is reported, not every form field.
    members = [m for m in wheel_members(metadata=METADATA) if not m.raw_name.endswith(b"METADATA")]
    path = write_wheel(tmp_path, members)
    with pytest.raises(DistributionRejected) as caught:
        validate_distribution(path, filename=path.name, declared=declared(summary=["x"]))
    assert "dist.form.field-mismatch" not in caught.value.codes
