"""Builders for small, real wheels and sdists (and hostile variants) in a temporary directory.

Reusable by any test: ``make_wheel(tmp_path, name="demo", version="1.0")`` returns the path of a
valid, deterministic wheel with a correct RECORD; keyword arguments bend it into a broken one.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import re
import tarfile
import warnings
import zipfile
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

__all__ = [
    "MetadataValue",
    "gzip_bytes",
    "make_sdist",
    "make_wheel",
    "metadata_bytes",
    "tar_bytes",
    "zip_bytes",
]

# A header value: a string, a list (the header repeated), or None (header left out).
MetadataValue = str | list[str] | None

_ZIP_DATE = (2024, 1, 1, 0, 0, 0)


def _name_part(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


def metadata_bytes(
    name: str = "demo",
    version: str = "1.0",
    overrides: Mapping[str, MetadataValue] | None = None,
    *,
    body: str | None = None,
) -> bytes:
    """Core metadata in email-header form. ``overrides`` replace, add or (None) drop headers."""
    headers: dict[str, MetadataValue] = {
        "Metadata-Version": "2.4",
        "Name": name,
        "Version": version,
        "Summary": "A demonstration distribution",
    }
    headers.update(overrides or {})
    lines: list[str] = []
    for header, value in headers.items():
        if value is None:
            continue
        for item in [value] if isinstance(value, str) else value:
            lines.append(f"{header}: {item}")
    text = "\n".join(lines) + "\n"
    if body is not None:
        text += "\n" + body
    return text.encode("utf-8")


def zip_bytes(members: Iterable[tuple[str, bytes]]) -> bytes:
    """A deflated ZIP with ``members`` in order (duplicates allowed)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name" for hostile archives
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path, content in members:
                archive.writestr(zipfile.ZipInfo(path, _ZIP_DATE), content, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def tar_bytes(
    members: Iterable[tuple[str, bytes | None]], *, tar_format: int = tarfile.PAX_FORMAT
) -> bytes:
    """An uncompressed tar; a ``None`` content makes a directory entry."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tar_format) as archive:
        for path, content in members:
            info = tarfile.TarInfo(path)
            info.mtime = 0
            if content is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                archive.addfile(info)
            else:
                info.size = len(content)
                info.mode = 0o644
                archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _record_hash(content: bytes) -> str:
    digest = hashlib.sha256(content).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def make_wheel(
    directory: Path,
    name: str = "demo",
    version: str = "1.0",
    *,
    filename: str | None = None,
    tag: str = "py3-none-any",
    dist_info: str | None = None,
    metadata_overrides: Mapping[str, MetadataValue] | None = None,
    metadata: bytes | None = None,
    extra_members: Mapping[str, bytes] | None = None,
    omit: Collection[str] = (),
) -> Path:
    """Write a wheel with a real RECORD and return its path.

    ``dist_info`` defaults to ``{normalized name}-{version}.dist-info``; ``metadata`` replaces
    the METADATA bytes entirely; ``omit`` names dist-info files (``"RECORD"``) or full member
    paths to leave out.
    """
    name_part = _name_part(name)
    filename = filename or f"{name_part}-{version}-{tag}.whl"
    dist_info = dist_info or f"{name_part}-{version}.dist-info"
    if metadata is None:
        metadata = metadata_bytes(name, version, metadata_overrides)
    python_tag, abi_tag, platform_tag = tag.split("-")
    wheel_lines = ["Wheel-Version: 1.0", "Generator: bastion-tests", "Root-Is-Purelib: true"]
    wheel_lines += [
        f"Tag: {py}-{abi}-{platform}"
        for py in python_tag.split(".")
        for abi in abi_tag.split(".")
        for platform in platform_tag.split(".")
    ]
    files: dict[str, bytes] = {
        f"{name_part}/__init__.py": b'"""Demo."""\n',
        **(extra_members or {}),
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": ("\n".join(wheel_lines) + "\n").encode(),
    }
    files = {
        path: content
        for path, content in files.items()
        if path not in omit and path.rsplit("/", 1)[-1] not in omit
    }
    record_path = f"{dist_info}/RECORD"
    if "RECORD" not in omit and record_path not in omit:
        rows = [f"{path},{_record_hash(content)},{len(content)}" for path, content in files.items()]
        files[record_path] = ("\n".join([*rows, f"{record_path},,"]) + "\n").encode()
    target = directory / filename
    target.write_bytes(zip_bytes(files.items()))
    return target


def make_sdist(
    directory: Path,
    name: str = "demo",
    version: str = "1.0",
    *,
    filename: str | None = None,
    top: str | None = None,
    metadata_overrides: Mapping[str, MetadataValue] | None = None,
    metadata: bytes | None = None,
    extra_members: Mapping[str, bytes | None] | None = None,
    omit: Collection[str] = (),
) -> Path:
    """Write a ``.tar.gz`` sdist (``{top}/PKG-INFO``, ``pyproject.toml``, a module).

    ``top`` defaults to ``{normalized name}-{version}``; ``extra_members`` paths are full
    archive paths (``None`` content = directory); ``omit`` names paths relative to ``top``.
    """
    name_part = _name_part(name)
    filename = filename or f"{name_part}-{version}.tar.gz"
    top = top or f"{name_part}-{version}"
    if metadata is None:
        metadata = metadata_bytes(
            name, version, {"Metadata-Version": "2.2", **(metadata_overrides or {})}
        )
    pyproject = f'[project]\nname = "{name}"\nversion = "{version}"\n'.encode()
    inner: dict[str, bytes | None] = {
        "PKG-INFO": metadata,
        "pyproject.toml": pyproject,
        f"src/{name_part}/__init__.py": b'"""Demo."""\n',
    }
    members: list[tuple[str, bytes | None]] = [(top, None)]
    members += [(f"{top}/{path}", content) for path, content in inner.items() if path not in omit]
    members += list((extra_members or {}).items())
    target = directory / filename
    target.write_bytes(gzip_bytes(tar_bytes(members)))
    return target
