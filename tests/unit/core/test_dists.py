"""The distribution validation pipeline (bastion.core.dists.validate_distribution).

Each hostile case says in one line what it attacks and asserts the exact problem code(s).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import tarfile
from pathlib import Path

import pytest

from bastion.core.dists import (
    KNOWN_CODES,
    DeclaredFields,
    DistProblem,
    DistributionRejected,
    FileHasher,
    Hashes,
    Limits,
    ReleaseMetadata,
    ValidatedDistribution,
    validate_distribution,
)
from tests.unit.core.builders import (
    MetadataValue,
    gzip_bytes,
    make_sdist,
    make_wheel,
    metadata_bytes,
    tar_bytes,
    zip_bytes,
)

WHEEL = "demo-1.0-py3-none-any.whl"
SDIST = "demo-1.0.tar.gz"
DEFAULT_LIMITS = Limits()


def validate(
    path: Path,
    *,
    declared: DeclaredFields | None = None,
    hashes: Hashes | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> ValidatedDistribution:
    return validate_distribution(
        path, filename=path.name, declared=declared, hashes=hashes, limits=limits
    )


def rejected_codes(
    path: Path, *, declared: DeclaredFields | None = None, limits: Limits = DEFAULT_LIMITS
) -> list[str]:
    with pytest.raises(DistributionRejected) as caught:
        validate(path, declared=declared, limits=limits)
    return list(caught.value.codes)


def write(directory: Path, filename: str, content: bytes) -> Path:
    target = directory / filename
    target.write_bytes(content)
    return target


# -- accepted -----------------------------------------------------------------------------------


def test_valid_wheel(tmp_path: Path) -> None:
    overrides: dict[str, MetadataValue] = {
        "Requires-Python": ">=3.9",
        "Classifier": ["Programming Language :: Python :: 3", "License :: OSI Approved"],
        "Project-URL": ["Source, https://example.org/src", "Docs, https://example.org/docs"],
        "Requires-Dist": ["requests>=2", "rich; extra == 'cli'"],
        "Provides-Extra": "cli",
        "Keywords": "demo,example",
    }
    path = make_wheel(tmp_path, metadata_overrides=overrides)
    expected_metadata = metadata_bytes("demo", "1.0", overrides)

    dist = validate(path)

    assert dist.filename == WHEEL
    assert dist.name == "demo"
    assert (dist.version, dist.canonical_version) == ("1.0", "1")
    assert dist.packagetype == "bdist_wheel"
    assert dist.python_version == "py3"
    assert dist.tags == frozenset({"py3-none-any"})
    assert dist.requires_python == ">=3.9"
    assert dist.size == path.stat().st_size
    content = path.read_bytes()
    assert dist.hashes == Hashes(
        sha256=hashlib.sha256(content).hexdigest(),
        blake2b_256=hashlib.blake2b(content, digest_size=32).hexdigest(),
        md5=hashlib.md5(content).hexdigest(),
    )
    assert dist.metadata_bytes == expected_metadata
    assert dist.metadata_sha256 == hashlib.sha256(expected_metadata).hexdigest()
    metadata = dist.metadata
    assert (metadata.metadata_version, metadata.name, metadata.version) == ("2.4", "demo", "1.0")
    assert metadata.summary == "A demonstration distribution"
    assert metadata.classifiers == (
        "Programming Language :: Python :: 3",
        "License :: OSI Approved",
    )
    assert metadata.project_urls == (
        ("Source", "https://example.org/src"),
        ("Docs", "https://example.org/docs"),
    )
    assert metadata.requires_dist == ("requests>=2", "rich; extra == 'cli'")
    assert metadata.provides_extra == ("cli",)
    assert metadata.keywords == "demo, example"
    assert metadata.license == "" and metadata.platforms == ()


def test_valid_sdist(tmp_path: Path) -> None:
    path = make_sdist(tmp_path)
    dist = validate(path)
    assert dist.filename == SDIST
    assert dist.packagetype == "sdist"
    assert dist.python_version == "source"
    assert dist.tags == frozenset()
    assert dist.requires_python is None
    assert dist.metadata_bytes == metadata_bytes("demo", "1.0", {"Metadata-Version": "2.2"})
    assert dist.metadata.metadata_version == "2.2"
    assert dist.hashes == Hashes.of_file(path)


def test_description_body_is_kept(tmp_path: Path) -> None:
    content = metadata_bytes(body="# Demo\n\nLong text.\n")
    dist = validate(make_wheel(tmp_path, metadata=content))
    assert dist.metadata.description == "# Demo\n\nLong text.\n"
    assert dist.metadata_bytes == content


def test_given_hashes_are_trusted_not_recomputed(tmp_path: Path) -> None:
    given = Hashes(sha256="a" * 64, blake2b_256="b" * 64, md5="c" * 32)
    assert validate(make_wheel(tmp_path), hashes=given).hashes is given


def test_metadata_version_spelled_differently_is_version_equal(tmp_path: Path) -> None:
    # The filename must be normalized; METADATA need only be Version-equal (P86/P89).
    path = make_wheel(tmp_path, metadata_overrides={"Version": "1.0.0"})
    dist = validate(path)
    assert (dist.version, dist.canonical_version) == ("1.0.0", "1")


@pytest.mark.parametrize("metadata_version", ["1.0", "1.1", "1.2", "2.1", "2.3", "2.5", "2.6"])
def test_supported_metadata_versions(tmp_path: Path, metadata_version: str) -> None:
    path = make_wheel(tmp_path, metadata_overrides={"Metadata-Version": metadata_version})
    assert validate(path).metadata.metadata_version == metadata_version


def test_matching_declared_fields_pass(tmp_path: Path) -> None:
    declared = DeclaredFields(
        name="Demo",
        version="1.0.0",
        filetype="bdist_wheel",
        pyversion="py3",
        metadata_version="2.4",
    )
    assert validate(make_wheel(tmp_path), declared=declared).name == "demo"
    sdist = DeclaredFields(name="demo", version="1.0", filetype="sdist", pyversion="source")
    assert validate(make_sdist(tmp_path), declared=sdist).packagetype == "sdist"


def test_release_metadata_as_dict_is_json_and_round_trips(tmp_path: Path) -> None:
    path = make_wheel(
        tmp_path, metadata_overrides={"Project-URL": "Home, https://example.org", "Platform": "any"}
    )
    metadata = validate(path).metadata
    data = json.loads(json.dumps(metadata.as_dict()))
    assert data["project_urls"] == [["Home", "https://example.org"]]
    assert data["platforms"] == ["any"]
    assert ReleaseMetadata.from_dict(data) == metadata


def test_file_hasher_matches_of_file(tmp_path: Path) -> None:
    path = write(tmp_path, "blob", b"x" * (3 * 1024 * 1024 + 5))
    hasher = FileHasher()
    data = path.read_bytes()
    for start in range(0, len(data), 100_000):
        hasher.update(data[start : start + 100_000])
    assert hasher.hashes() == Hashes.of_file(path)
    assert hasher.size == len(data)


# -- filename -----------------------------------------------------------------------------------


def test_wrong_extension(tmp_path: Path) -> None:
    # A zip sdist (PEP 527 legacy) is not accepted even when its content is fine.
    path = write(tmp_path, "demo-1.0.zip", make_wheel(tmp_path).read_bytes())
    assert rejected_codes(path) == ["dist.filename.unsupported-type"]


def test_unnormalized_filename(tmp_path: Path) -> None:
    # Name part in the wrong case; the archive's paths follow the filename, so only that fails.
    path = make_wheel(
        tmp_path, filename="Demo-1.0-py3-none-any.whl", dist_info="Demo-1.0.dist-info"
    )
    with pytest.raises(DistributionRejected) as caught:
        validate(path)
    (problem,) = caught.value.problems
    assert problem.code == "dist.filename.not-normalized"
    assert "'demo-1.0-py3-none-any.whl'" in problem.message


def test_local_version(tmp_path: Path) -> None:
    # PEP 440 local versions are not for public indexes (P106).
    path = make_sdist(tmp_path, version="1.0+abc")
    with pytest.raises(DistributionRejected) as caught:
        validate(path)
    (problem,) = caught.value.problems
    assert problem.code == "dist.version.local"
    assert str(problem) == "The use of local versions in '1.0+abc' is not allowed."


# -- archive framing ----------------------------------------------------------------------------


def test_wheel_that_is_a_tarball(tmp_path: Path) -> None:
    # A .whl that is really a gzipped tar: installers and the index would disagree.
    path = write(tmp_path, WHEEL, make_sdist(tmp_path).read_bytes())
    assert rejected_codes(path) == ["dist.archive.wrong-type"]


def test_wheel_that_is_an_uncompressed_tar(tmp_path: Path) -> None:
    # Plain tar whose first header checksum is valid.
    path = write(tmp_path, WHEEL, tar_bytes([("demo-1.0.dist-info/METADATA", metadata_bytes())]))
    assert rejected_codes(path) == ["dist.archive.wrong-type"]


def test_zip_prefixed_with_other_data(tmp_path: Path) -> None:
    # Something else first, a valid ZIP directory at the end (zipfile accepts this): the
    # content is a ZIP archive with prepended data, which is what the problem says.
    content = b"#!/bin/sh\necho hi\n" + make_wheel(tmp_path).read_bytes()
    assert rejected_codes(write(tmp_path, WHEEL, content)) == ["dist.zip.prepended-data"]


def test_sdist_that_is_a_zip(tmp_path: Path) -> None:
    # A .tar.gz that is really a ZIP.
    path = write(tmp_path, SDIST, make_wheel(tmp_path).read_bytes())
    assert rejected_codes(path) == ["dist.archive.wrong-type"]


def test_sdist_that_is_an_uncompressed_tar(tmp_path: Path) -> None:
    # Right container, missing the gzip layer the extension promises.
    path = write(tmp_path, SDIST, tar_bytes([("demo-1.0/PKG-INFO", metadata_bytes())]))
    assert rejected_codes(path) == ["dist.archive.wrong-type"]


def test_gzip_that_is_not_a_tar(tmp_path: Path) -> None:
    # gzip of random text.
    path = write(tmp_path, SDIST, gzip_bytes(b"hello, this is not a tar archive\n" * 40))
    assert rejected_codes(path) == ["dist.archive.unreadable"]


@pytest.mark.parametrize("filename", [WHEEL, SDIST])
def test_empty_file(tmp_path: Path, filename: str) -> None:
    # Zero bytes.
    assert rejected_codes(write(tmp_path, filename, b"")) == ["dist.archive.unreadable"]


@pytest.mark.parametrize("filename", [WHEEL, SDIST])
def test_random_bytes(tmp_path: Path, filename: str) -> None:
    # Not an archive at all.
    path = write(tmp_path, filename, bytes(range(256)) * 8)
    assert rejected_codes(path) == ["dist.archive.wrong-type"]


def test_truncated_wheel(tmp_path: Path) -> None:
    # Cut in half: the central directory is gone.
    content = make_wheel(tmp_path).read_bytes()
    path = write(tmp_path, WHEEL, content[: len(content) // 2])
    assert rejected_codes(path) == ["dist.archive.unreadable"]


def test_truncated_sdist(tmp_path: Path) -> None:
    # Cut short: the gzip stream ends before its end marker.
    content = make_sdist(tmp_path).read_bytes()
    path = write(tmp_path, SDIST, content[: len(content) - 20])
    assert rejected_codes(path) == ["dist.archive.unreadable"]


def test_corrupt_sdist(tmp_path: Path) -> None:
    # Flipped bytes in the deflate stream.
    content = bytearray(make_sdist(tmp_path).read_bytes())
    for index in range(30, 60):
        content[index] ^= 0xFF
    assert rejected_codes(write(tmp_path, SDIST, bytes(content))) == ["dist.archive.unreadable"]


def test_corrupt_wheel_metadata_member(tmp_path: Path) -> None:
    # METADATA's CRC no longer matches: listing works, reading does not.
    content = make_wheel(tmp_path).read_bytes()
    start = content.index(b"demo-1.0.dist-info/METADATA") + len("demo-1.0.dist-info/METADATA")
    corrupt = content[:start] + bytes(b ^ 0x55 for b in content[start : start + 20])
    corrupt += content[start + 20 :]
    assert rejected_codes(write(tmp_path, WHEEL, corrupt)) == ["dist.archive.unreadable"]


def test_sdist_with_trailing_garbage_after_gzip(tmp_path: Path) -> None:
    # Extra bytes after the gzip stream (a place to hide a second payload).
    content = make_sdist(tmp_path).read_bytes() + b"GARBAGE!" * 10
    assert rejected_codes(write(tmp_path, SDIST, content)) == ["dist.archive.unreadable"]


def test_sdist_with_members_hidden_behind_a_corrupt_header(tmp_path: Path) -> None:
    # tarfile stops silently at a bad header; the members after it must not go unseen.
    good = tar_bytes([("demo-1.0", None), ("demo-1.0/PKG-INFO", metadata_bytes())])
    end = good.rindex(metadata_bytes()) + 512  # end of PKG-INFO's data block
    hidden = tar_bytes([("demo-1.0/evil.py", b"import os\n")])
    content = good[:end] + b"\x01" * 512 + hidden
    assert rejected_codes(write(tmp_path, SDIST, gzip_bytes(content))) == [
        "dist.archive.unreadable"
    ]


def test_too_many_members(tmp_path: Path) -> None:
    # Entry-count bomb, with a small limit.
    limits = Limits(max_members=3)
    extra = {f"demo/m{index}.py": b"" for index in range(5)}
    wheel = make_wheel(tmp_path, extra_members=extra)
    assert rejected_codes(wheel, limits=limits) == ["dist.archive.too-many-members"]
    sdist = make_sdist(tmp_path, extra_members={f"demo-1.0/m{i}.py": b"" for i in range(5)})
    assert rejected_codes(sdist, limits=limits) == ["dist.archive.too-many-members"]


def test_too_large_uncompressed(tmp_path: Path) -> None:
    # Uncompressed size over the limit.
    limits = Limits(max_uncompressed_bytes=5_000)
    big = {"demo/big.bin": b"\x00" * 10_000}
    assert rejected_codes(make_wheel(tmp_path, extra_members=big), limits=limits) == [
        "dist.archive.too-large"
    ]
    sdist = make_sdist(tmp_path, extra_members={"demo-1.0/big.bin": b"\x00" * 10_000})
    assert rejected_codes(sdist, limits=limits) == ["dist.archive.too-large"]


def test_too_compressed(tmp_path: Path) -> None:
    # Decompression bomb: tiny file, huge content (threshold lowered for the test).
    limits = Limits(compression_ratio_threshold_bytes=50_000, max_compression_ratio=10)
    zeros = b"\x00" * 200_000
    wheel = make_wheel(tmp_path, extra_members={"demo/zeros.bin": zeros})
    assert rejected_codes(wheel, limits=limits) == ["dist.archive.too-compressed"]
    sdist = make_sdist(tmp_path, extra_members={"demo-1.0/zeros.bin": zeros})
    assert rejected_codes(sdist, limits=limits) == ["dist.archive.too-compressed"]
    # Under the threshold the ratio is not enforced.
    assert validate(wheel, limits=Limits(max_compression_ratio=10)).name == "demo"


def test_oversized_tar_header_record(tmp_path: Path) -> None:
    # A pax header that tarfile would read into memory whole.
    long_name = "demo-1.0/" + "x" * 70_000
    sdist = make_sdist(tmp_path, extra_members={long_name: b""})
    assert rejected_codes(sdist, limits=Limits(max_tar_header_bytes=1024)) == [
        "dist.archive.too-large"
    ]
    assert validate(sdist).name == "demo"  # the default limit (1 MiB) allows it


def test_duplicate_member_in_wheel(tmp_path: Path) -> None:
    # Two METADATA entries: the index and an installer could read different ones.
    members = [
        ("demo-1.0.dist-info/METADATA", metadata_bytes()),
        ("demo-1.0.dist-info/METADATA", metadata_bytes("evil")),
        ("demo-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\n"),
        ("demo-1.0.dist-info/RECORD", b""),
    ]
    assert rejected_codes(write(tmp_path, WHEEL, zip_bytes(members))) == [
        "dist.archive.duplicate-member"
    ]


def test_duplicate_file_in_sdist(tmp_path: Path) -> None:
    # Same file twice in a tar: extraction keeps the last one.
    sdist = write(
        tmp_path,
        SDIST,
        gzip_bytes(
            tar_bytes(
                [
                    ("demo-1.0/PKG-INFO", metadata_bytes()),
                    ("demo-1.0/PKG-INFO", metadata_bytes("evil")),
                ]
            )
        ),
    )
    assert rejected_codes(sdist) == ["dist.archive.duplicate-member"]


@pytest.mark.parametrize("member", ["../evil.py", "/etc/evil", "demo/../../evil.py"])
def test_unsafe_member_paths(tmp_path: Path, member: str) -> None:
    # Path traversal in a member name (P95).
    wheel = make_wheel(tmp_path, extra_members={member: b"x"})
    assert rejected_codes(wheel) == ["dist.archive.unsafe-path"]


# -- contents -----------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["METADATA", "WHEEL", "RECORD"])
def test_wheel_missing_required_file(tmp_path: Path, missing: str) -> None:
    # P87: .dist-info must hold METADATA, WHEEL and RECORD.
    with pytest.raises(DistributionRejected) as caught:
        validate(make_wheel(tmp_path, omit={missing}))
    (problem,) = caught.value.problems
    assert problem.code == "dist.wheel.missing-file"
    assert f"'demo-1.0.dist-info/{missing}'" in problem.message


def test_wheel_with_dist_info_under_another_name(tmp_path: Path) -> None:
    # METADATA present, but not where the filename says it must be.
    path = make_wheel(tmp_path, dist_info="other-1.0.dist-info")
    assert rejected_codes(path) == ["dist.wheel.missing-file"] * 3


def test_sdist_missing_pkg_info(tmp_path: Path) -> None:
    # P94: no PKG-INFO, so no metadata to check.
    assert rejected_codes(make_sdist(tmp_path, omit={"PKG-INFO"})) == [
        "dist.sdist.missing-pkg-info"
    ]


def test_sdist_with_two_top_level_directories(tmp_path: Path) -> None:
    # P94: a second top-level entry next to demo-1.0/.
    sdist = make_sdist(tmp_path, extra_members={"other/setup.py": b""})
    assert rejected_codes(sdist) == ["dist.sdist.bad-layout"]


def test_sdist_with_wrong_top_level_directory(tmp_path: Path) -> None:
    # Top-level directory not named after the filename.
    assert rejected_codes(make_sdist(tmp_path, top="Demo-1.0")) == ["dist.sdist.bad-layout"]


def test_metadata_too_large(tmp_path: Path) -> None:
    # A huge METADATA is not read into memory.
    limits = Limits(max_metadata_bytes=50)
    assert rejected_codes(make_wheel(tmp_path), limits=limits) == ["dist.metadata.too-large"]
    assert rejected_codes(make_sdist(tmp_path), limits=limits) == ["dist.metadata.too-large"]


# -- metadata -----------------------------------------------------------------------------------


def test_metadata_not_utf8(tmp_path: Path) -> None:
    # Latin-1 bytes in METADATA.
    content = metadata_bytes().replace(b"demonstration", b"d\xe9monstration")
    assert rejected_codes(make_wheel(tmp_path, metadata=content)) == ["dist.metadata.encoding"]


@pytest.mark.parametrize("field", ["Metadata-Version", "Name", "Version"])
def test_missing_required_field(tmp_path: Path, field: str) -> None:
    # P97: the three required fields.
    with pytest.raises(DistributionRejected) as caught:
        validate(make_wheel(tmp_path, metadata_overrides={field: None}))
    (problem,) = caught.value.problems
    assert (problem.code, problem.field) == ("dist.metadata.missing-field", field)


def test_required_field_twice(tmp_path: Path) -> None:
    # Two Name headers: which one is the project?
    path = make_wheel(tmp_path, metadata_overrides={"Name": ["demo", "evil"]})
    assert rejected_codes(path) == ["dist.metadata.invalid-field"]


def test_unsupported_metadata_version(tmp_path: Path) -> None:
    # P97: an unknown (future) major version.
    path = make_wheel(tmp_path, metadata_overrides={"Metadata-Version": "3.0"})
    assert rejected_codes(path) == ["dist.metadata.unsupported-version"]


def test_name_mismatch_between_file_and_filename(tmp_path: Path) -> None:
    # P89: METADATA claims another project.
    with pytest.raises(DistributionRejected) as caught:
        validate(make_wheel(tmp_path, metadata_overrides={"Name": "other"}))
    (problem,) = caught.value.problems
    assert problem.code == "dist.metadata.name-mismatch"
    assert str(problem) == "Name 'other' in METADATA does not match the filename's 'demo'."


def test_version_mismatch_between_file_and_filename(tmp_path: Path) -> None:
    # P89: METADATA Version 2.0 inside a 1.0 wheel.
    path = make_sdist(tmp_path, metadata_overrides={"Version": "2.0"})
    with pytest.raises(DistributionRejected) as caught:
        validate(path)
    (problem,) = caught.value.problems
    assert problem.code == "dist.metadata.version-mismatch"
    assert str(problem) == "Version '2.0' in PKG-INFO does not match the filename's '1.0'."


def test_local_version_only_in_metadata(tmp_path: Path) -> None:
    # Filename 1.0, METADATA 1.0+abc: not the same version.
    path = make_wheel(tmp_path, metadata_overrides={"Version": "1.0+abc"})
    assert rejected_codes(path) == ["dist.metadata.version-mismatch"]


def test_invalid_name_in_metadata(tmp_path: Path) -> None:
    # KELVIN SIGN normalizes to "k" with str.lower(): must not pass as "koo".
    path = make_wheel(tmp_path, "koo", metadata_overrides={"Name": "\u212aoo"})
    assert rejected_codes(path) == ["dist.metadata.invalid-name"]


def test_invalid_version_in_metadata(tmp_path: Path) -> None:
    # Not PEP 440.
    path = make_wheel(tmp_path, metadata_overrides={"Version": "one point oh"})
    assert rejected_codes(path) == ["dist.metadata.invalid-version"]


@pytest.mark.parametrize("specifier", ["foo>=", ">=3.x", "~=3"])
def test_bad_requires_python(tmp_path: Path, specifier: str) -> None:
    # Served to pip/uv as data-requires-python: must parse.
    path = make_wheel(tmp_path, metadata_overrides={"Requires-Python": specifier})
    with pytest.raises(DistributionRejected) as caught:
        validate(path)
    (problem,) = caught.value.problems
    assert (problem.code, problem.field) == ("dist.metadata.requires-python", "Requires-Python")


def test_repeated_optional_fields_are_invalid_and_unknown_fields_ignored(tmp_path: Path) -> None:
    # Which of two Summaries (or of two "A" URLs) is the project's? Unknown headers are ignored.
    overrides: dict[str, MetadataValue] = {
        "Summary": ["one", "two"],
        "X-Custom": "yes",
        "Project-URL": ["A, https://example.org/x", "A, https://example.org/y"],
    }
    with pytest.raises(DistributionRejected) as caught:
        validate(make_wheel(tmp_path, metadata_overrides=overrides))
    assert [(p.code, p.field, p.message) for p in caught.value.problems] == [
        (
            "dist.metadata.invalid-field",
            "Project-URL",
            "Project-URL in METADATA uses a label twice, or is not valid UTF-8.",
        ),
        ("dist.metadata.invalid-field", "Summary", "Summary in METADATA appears more than once."),
    ]
    assert validate(make_wheel(tmp_path, metadata_overrides={"X-Custom": "yes"})).name == "demo"


# -- declared (upload form) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "code"),
    [
        (DeclaredFields(name="other", version="1.0"), "dist.form.name-mismatch"),
        (DeclaredFields(name="-demo", version="1.0"), "dist.form.invalid-name"),
        (DeclaredFields(name="demo", version="2.0"), "dist.form.version-mismatch"),
        (DeclaredFields(name="demo", version="1.0+abc"), "dist.form.version-mismatch"),
        (DeclaredFields(name="demo", version="latest"), "dist.form.invalid-version"),
        (DeclaredFields(name="demo", version="1.0", filetype="bdist_egg"), "dist.form.filetype"),
        (
            DeclaredFields(name="demo", version="1.0", filetype="sdist"),
            "dist.form.filetype-mismatch",
        ),
        (DeclaredFields(name="demo", version="1.0", pyversion="source"), "dist.form.pyversion"),
    ],
)
def test_declared_fields_against_a_wheel(
    tmp_path: Path, declared: DeclaredFields, code: str
) -> None:
    # The form contradicts the file.
    assert rejected_codes(make_wheel(tmp_path), declared=declared) == [code]


def test_declared_pyversion_for_an_sdist(tmp_path: Path) -> None:
    # PyPI's form rule: an sdist's Python version is "source".
    declared = DeclaredFields(name="demo", version="1.0", pyversion="py3")
    with pytest.raises(DistributionRejected) as caught:
        validate(make_sdist(tmp_path), declared=declared)
    (problem,) = caught.value.problems
    assert problem.code == "dist.form.pyversion"
    assert str(problem) == "Use 'source' as Python version for an sdist."


def test_declared_filetype_unknown_message(tmp_path: Path) -> None:
    # Legacy PyPI file types are not accepted here.
    declared = DeclaredFields(name="demo", version="1.0", filetype="bdist_wininst")
    with pytest.raises(DistributionRejected) as caught:
        validate(make_sdist(tmp_path), declared=declared)
    assert caught.value.summary() == "Use a known file type."


def test_declared_name_checked_against_filename_when_metadata_is_missing(tmp_path: Path) -> None:
    # No PKG-INFO: the form is still compared with what the filename says.
    declared = DeclaredFields(name="other", version="1.0")
    path = make_sdist(tmp_path, omit={"PKG-INFO"})
    assert rejected_codes(path, declared=declared) == [
        "dist.sdist.missing-pkg-info",
        "dist.form.name-mismatch",
    ]


# -- several problems at once -------------------------------------------------------------------


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    # Unnormalized filename, wrong Name, bad Requires-Python, contradicting form, missing RECORD.
    path = make_wheel(
        tmp_path,
        filename="Demo-1.0-py3-none-any.whl",
        dist_info="Demo-1.0.dist-info",
        metadata_overrides={"Name": "other", "Requires-Python": ">=3.x"},
        omit={"RECORD"},
    )
    declared = DeclaredFields(name="demo", version="2.0", filetype="sdist")
    with pytest.raises(DistributionRejected) as caught:
        validate(path, declared=declared)
    rejection = caught.value
    assert list(rejection.codes) == [
        "dist.filename.not-normalized",
        "dist.wheel.missing-file",
        "dist.metadata.requires-python",
        "dist.metadata.name-mismatch",
        "dist.form.name-mismatch",
        "dist.form.version-mismatch",
        "dist.form.filetype-mismatch",
    ]
    assert rejection.summary() == "; ".join(p.message for p in rejection.problems)
    assert all(str(p) == p.message for p in rejection.problems)
    assert all("\n" not in p.message for p in rejection.problems)
    assert isinstance(rejection, ExceptionGroup)


def test_rejection_works_with_except_star(tmp_path: Path) -> None:
    caught: list[DistProblem] = []
    try:
        validate(make_wheel(tmp_path, omit={"WHEEL"}))
    except* DistProblem as group:
        caught.extend(p for p in group.exceptions if isinstance(p, DistProblem))
    assert [p.code for p in caught] == ["dist.wheel.missing-file"]


def test_problem_pickles() -> None:
    problem = DistProblem("dist.metadata.missing-field", "Missing Name.", field="Name")
    copy = pickle.loads(pickle.dumps(problem))
    assert (copy.code, copy.message, copy.field) == (problem.code, problem.message, problem.field)


def test_every_code_in_the_source_is_documented() -> None:
    source = Path(__file__).parents[3] / "src" / "bastion" / "core" / "dists"
    used: set[str] = set()
    for module in source.glob("*.py"):
        if module.name != "errors.py":
            used.update(re.findall(r'"(dist\.[a-z0-9-]+\.[a-z0-9-]+)"', module.read_text()))
    assert used == KNOWN_CODES


def test_tar_member_sizes_in_listing_are_checked_before_seeking(tmp_path: Path) -> None:
    # A header claiming a 10 GiB member in a tiny file: rejected from the header alone.
    info = tarfile.TarInfo("demo-1.0/huge.bin")
    info.size = 10 * 1024**3
    header = info.tobuf(format=tarfile.PAX_FORMAT)
    start = tar_bytes([("demo-1.0", None), ("demo-1.0/PKG-INFO", metadata_bytes())])
    content = gzip_bytes(start[: start.rindex(metadata_bytes()) + 512] + header)
    assert rejected_codes(write(tmp_path, SDIST, content)) == ["dist.archive.too-large"]
