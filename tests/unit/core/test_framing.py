"""Archive framing details (bastion.core.dists.zipframing, tarframing) beyond the one-artifact
hostile cases: ZIP64, the streaming path for large members, bounded memory, RECORD variants,
links inside an sdist, and how many problems of one kind are listed."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import os
import struct
import tarfile
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from bastion.core.dists import DistributionRejected, Limits, validate_distribution
from tests.fixtures.dists import sdist_members, tar_member, wheel_members, write_sdist, write_wheel
from tests.fixtures.dists.rawzip import STORED, RawMember, build_zip
from tests.unit.core.builders import metadata_bytes


def codes(path: Path, limits: Limits | None = None) -> list[str]:
    with pytest.raises(DistributionRejected) as caught:
        validate_distribution(path, filename=path.name, limits=limits or Limits())
    return list(caught.value.codes)


def record_hash(content: bytes, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm, content).digest()
    return f"{algorithm}=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def zipfile_wheel(path: Path, files: dict[str, bytes], **options: bool) -> Path:
    """A wheel written by zipfile itself (what most build backends use)."""
    files = {
        **files,
        "demo-1.0.dist-info/METADATA": metadata_bytes(),
        "demo-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    rows = [f"{name},{record_hash(content)},{len(content)}" for name, content in files.items()]
    files["demo-1.0.dist-info/RECORD"] = (
        "\n".join([*rows, "demo-1.0.dist-info/RECORD,,"])
    ).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
            with archive.open(info, "w", **options) as stream:
                stream.write(content)
    return path


def test_zip64_members_are_read(tmp_path: Path) -> None:
    path = zipfile_wheel(
        tmp_path / "demo-1.0-py3-none-any.whl", {"demo/a.py": b"a = 1\n"}, force_zip64=True
    )
    assert validate_distribution(path, filename=path.name).name == "demo"


def test_zip64_end_record_for_more_than_65535_members(tmp_path: Path) -> None:
    files = {f"demo/m{index}.py": b"" for index in range(65_600)}
    path = zipfile_wheel(tmp_path / "demo-1.0-py3-none-any.whl", files)
    assert validate_distribution(path, filename=path.name).name == "demo"
    assert codes(path, Limits(max_members=65_000)) == ["dist.archive.too-many-members"]


@pytest.mark.parametrize("method", [STORED, 8])
def test_large_members_are_streamed_and_verified(tmp_path: Path, method: int) -> None:
    content = os.urandom(3 * 1024 * 1024 + 17)
    path = write_wheel(
        tmp_path, wheel_members(extra=[RawMember("demo/blob.bin", content, method=method)])
    )
    assert validate_distribution(path, filename=path.name).name == "demo"
    tampered = wheel_members(extra=[RawMember("demo/blob.bin", content, method=method)])
    tampered[1].content = content[:-1] + b"!"  # RECORD keeps the original hash
    assert codes(write_wheel(tmp_path, tampered)) == ["dist.record.hash-mismatch"]


def test_large_lying_member_is_stopped_at_its_declared_size(tmp_path: Path) -> None:
    lying = RawMember("demo/zeros.bin", bytes(20 * 1024 * 1024), declared_size=1024 * 1024)
    path = write_wheel(tmp_path, wheel_members(extra=[lying]))
    tracemalloc.start()
    try:
        assert codes(path) == ["dist.zip.size-mismatch"]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024


def test_memory_does_not_grow_with_member_size(tmp_path: Path) -> None:
    content = bytes(60 * 1024 * 1024)  # compresses to ~60 KB
    path = write_wheel(tmp_path, wheel_members(extra=[RawMember("demo/zeros.bin", content)]))
    del content
    limits = Limits(compression_ratio_threshold_bytes=1 << 40)  # not a bomb for this test
    tracemalloc.start()
    try:
        validate_distribution(path, filename=path.name, limits=limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024


@pytest.mark.parametrize("algorithm", ["sha384", "sha512"])
def test_stronger_record_hashes(tmp_path: Path, algorithm: str) -> None:
    content = b"x = 1\n"
    rows = [("demo/strong.py", record_hash(content, algorithm), str(len(content)))]
    members = wheel_members(
        extra=[RawMember("demo/strong.py", content)], unlisted={"demo/strong.py"}, record_rows=rows
    )
    path = write_wheel(tmp_path, members)
    assert validate_distribution(path, filename=path.name).name == "demo"


@pytest.mark.parametrize(
    "hash_text",
    [
        record_hash(b"x = 1\n") + "=",  # padding
        "sha256=+" + record_hash(b"x = 1\n")[8:],  # standard, not urlsafe, base64
        "sha256=" + hashlib.sha256(b"x = 1\n").hexdigest(),  # hex, as one real wheel does
        "",
    ],
)
def test_malformed_record_hashes(tmp_path: Path, hash_text: str) -> None:
    content = b"x = 1\n"
    rows = [("demo/odd.py", hash_text, str(len(content)))]
    members = wheel_members(
        extra=[RawMember("demo/odd.py", content)], unlisted={"demo/odd.py"}, record_rows=rows
    )
    assert codes(write_wheel(tmp_path, members)) == ["dist.record.invalid"]


def test_record_that_is_not_utf8(tmp_path: Path) -> None:
    members = wheel_members()
    members[-1].content = b"demo/__init__.py,sha256=\xff,1\n"
    assert codes(write_wheel(tmp_path, members)) == ["dist.record.invalid"]


def test_many_problems_of_one_kind_are_summarized(tmp_path: Path) -> None:
    extra = [RawMember(f"demo/m{index}.py", b"") for index in range(30)]
    unlisted = {f"demo/m{index}.py" for index in range(30)}
    path = write_wheel(tmp_path, wheel_members(extra=extra, unlisted=unlisted))
    with pytest.raises(DistributionRejected) as caught:
        validate_distribution(path, filename=path.name, limits=Limits(max_problems_per_code=5))
    messages = [problem.message for problem in caught.value.problems]
    assert caught.value.codes == ("dist.record.missing-entry",) * 6
    assert messages[-1] == "... and 25 more problems like the above."


def test_deflated_empty_directory_entry_is_fine(tmp_path: Path) -> None:
    # Some tools deflate directory entries too: 2 bytes of compressed nothing.
    directory = RawMember("demo/", b"", mode=0o40755)
    path = write_wheel(tmp_path, wheel_members(extra=[directory], unlisted={"demo/"}))
    assert validate_distribution(path, filename=path.name).name == "demo"


def test_directory_entry_with_content_is_hidden_data(tmp_path: Path) -> None:
    directory = RawMember("demo/", b"hidden payload", mode=0o40755)
    assert codes(write_wheel(tmp_path, wheel_members(extra=[directory]))) == [
        "dist.zip.hidden-data"
    ]


def test_first_member_not_at_the_start(tmp_path: Path) -> None:
    # Offsets adjusted for the stub (zip -A): still bytes no member accounts for.
    members = wheel_members()
    content = build_zip(members)
    stub = b"#!/bin/sh\n"
    shifted = bytearray(stub + content)
    # Patch every central directory offset by len(stub).
    position = shifted.index(b"PK\x01\x02")
    while position >= 0:
        (offset,) = struct.unpack_from("<L", shifted, position + 42)
        struct.pack_into("<L", shifted, position + 42, offset + len(stub))
        position = shifted.find(b"PK\x01\x02", position + 46)
    end = shifted.rindex(b"PK\x05\x06")
    (directory_offset,) = struct.unpack_from("<L", shifted, end + 16)
    struct.pack_into("<L", shifted, end + 16, directory_offset + len(stub))
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    path.write_bytes(bytes(shifted))
    assert codes(path) == ["dist.zip.prepended-data"]


def test_links_inside_an_sdist_are_allowed(tmp_path: Path) -> None:
    links = [
        (tar_member("demo-1.0/README", tarfile.SYMTYPE, linkname="src/demo/__init__.py"), b""),
        (
            tar_member(
                "demo-1.0/src/demo/copy.py", tarfile.LNKTYPE, linkname="demo-1.0/pyproject.toml"
            ),
            b"",
        ),
        (tar_member("demo-1.0/src/self", tarfile.SYMTYPE, linkname="."), b""),
    ]
    path = write_sdist(tmp_path, sdist_members() + links)
    assert validate_distribution(path, filename=path.name).name == "demo"


@pytest.mark.parametrize(
    ("name", "kind", "target"),
    [
        ("demo-1.0/up", tarfile.SYMTYPE, ".."),
        ("demo-1.0/abs", tarfile.SYMTYPE, "/etc"),
        ("demo-1.0/win", tarfile.SYMTYPE, "..\\..\\x"),
        ("demo-1.0/hard", tarfile.LNKTYPE, "demo-1.0/not-there"),  # dangling hard link
        ("demo-1.0/hard", tarfile.LNKTYPE, "demo-1.0/src"),  # a directory, not a file
        ("demo-1.0/sub/deep", tarfile.SYMTYPE, "../../../x"),
    ],
)
def test_unsafe_links(tmp_path: Path, name: str, kind: bytes, target: str) -> None:
    link = (tar_member(name, kind, linkname=target), b"")
    assert codes(write_sdist(tmp_path, sdist_members() + [link])) == ["dist.archive.unsafe-link"]


def test_pkg_info_is_read_without_a_second_decompression(tmp_path: Path) -> None:
    # PKG-INFO last, after a large member: captured while walking, not re-read from the start.
    members = sdist_members()
    big = os.urandom(5 * 1024 * 1024)
    reordered = [
        members[0],
        (tar_member("demo-1.0/big.bin", size=len(big)), big),
        *members[2:],
        members[1],
    ]
    path = write_sdist(tmp_path, reordered)
    assert validate_distribution(path, filename=path.name).name == "demo"


def test_tar_pax_global_header_renaming_members(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"path": "evil"}
    ) as archive:
        for info, content in sdist_members():
            archive.addfile(info, io.BytesIO(content) if info.isreg() else None)
    path = tmp_path / "demo-1.0.tar.gz"
    path.write_bytes(gzip.compress(buffer.getvalue()))
    assert "dist.archive.unsafe-path" in codes(path)


@pytest.mark.parametrize("local_name", [b"demo/__init__.p", b"demo/__init__.pyc", b"d"])
def test_local_name_of_another_length(tmp_path: Path, local_name: bytes) -> None:
    members = wheel_members()
    members[0].local_name = local_name
    assert codes(write_wheel(tmp_path, members)) == ["dist.zip.header-mismatch"]


@pytest.mark.parametrize("size", [1, 4, 40])
def test_extra_field_only_in_the_local_header(tmp_path: Path, size: int) -> None:
    # Alignment padding (some writers align stored members): a local-only extra field.
    padding = struct.pack("<2H", 0xD935, size) + bytes(size)
    members = wheel_members()
    for member in members:
        member.local_extra = padding
    path = write_wheel(tmp_path, members)
    assert validate_distribution(path, filename=path.name).name == "demo"
