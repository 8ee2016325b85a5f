"""Render the simple API (PEP 503/691/592/658/714/700/792) and the PyPI JSON API to bytes.

Rendering is pure: it takes rows already loaded and returns bytes; ``pages`` caches the result.
File URLs in simple pages are relative (``../../files/...``) so a page is the same whatever host
or prefix serves it; the JSON API uses absolute URLs with the ``BASE`` placeholder, which the view
replaces with BASTION_BASE_URL (never with the request's Host header).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from packaging.version import InvalidVersion, Version

from bastion.projects.models import File, Project, ProjectStatus, Release

API_VERSION = "1.4"
BASE = "__BASTION_BASE__"


def upload_time(value: datetime) -> str:
    """PEP 700: ISO 8601 UTC with a ``Z`` (P39)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def version_key(text: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(text))
    except InvalidVersion:  # pragma: no cover - versions are validated on upload
        return (0, text)


def file_path(file: File) -> str:
    return f"files/{file.storage_key}"


def _attr(value: str) -> str:
    return escape(value, quote=True)


def _html_start(title: str, extra_meta: Sequence[str] = ()) -> list[str]:
    """The document head every simple HTML page shares (PEP 503, PEP 629 version meta)."""
    return [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        '    <meta charset="utf-8">',
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
        *extra_meta,
        f"    <title>{escape(title)}</title>",
        "  </head>",
        "  <body>",
    ]


def simple_root_html(projects: Sequence[tuple[str, str]]) -> bytes:
    lines = _html_start("Simple index")
    for name, normalized in projects:
        lines.append(f'    <a href="{_attr(normalized)}/">{escape(name)}</a><br />')
    lines += ["  </body>", "</html>", ""]
    return "\n".join(lines).encode()


def simple_root_json(projects: Sequence[tuple[str, str]]) -> bytes:
    body = {
        "meta": {"api-version": API_VERSION},
        "projects": [{"name": name} for name, _normalized in projects],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _status_meta(project: Project) -> list[str]:
    if project.status == ProjectStatus.ACTIVE:
        return []
    lines = [f'    <meta name="pypi:project-status" content="{_attr(project.status)}">']
    if project.status_reason:
        lines.append(
            f'    <meta name="pypi:project-status-reason" content="{_attr(project.status_reason)}">'
        )
    return lines


def simple_detail_html(project: Project, files: Sequence[File]) -> bytes:
    lines = [
        *_html_start(f"Links for {project.name}", _status_meta(project)),
        f"    <h1>Links for {escape(project.name)}</h1>",
    ]
    for file in files:
        attributes = [f'href="../../{_attr(file_path(file))}#sha256={file.sha256}"']
        if file.requires_python:
            attributes.append(f'data-requires-python="{_attr(file.requires_python)}"')
        if file.yanked:
            attributes.append(f'data-yanked="{_attr(file.yanked_reason)}"')
        if file.metadata_sha256:
            value = f"sha256={file.metadata_sha256}"
            attributes.append(f'data-dist-info-metadata="{value}"')
            attributes.append(f'data-core-metadata="{value}"')
        lines.append(f"    <a {' '.join(attributes)}>{escape(file.filename)}</a><br />")
    lines += ["  </body>", "</html>", ""]
    return "\n".join(lines).encode()


def simple_detail_json(project: Project, files: Sequence[File], versions: Sequence[str]) -> bytes:
    entries = []
    for file in files:
        entry: dict[str, object] = {
            "filename": file.filename,
            "url": f"../../{file_path(file)}",
            "hashes": {"sha256": file.sha256},
            "requires-python": file.requires_python or None,
            "core-metadata": {"sha256": file.metadata_sha256} if file.metadata_sha256 else False,
            "size": file.size,
            "upload-time": upload_time(file.upload_time),
            "yanked": (file.yanked_reason or True) if file.yanked else False,
        }
        entries.append(entry)
    body: dict[str, object] = {
        "meta": {"api-version": API_VERSION, "_last-serial": project.serial},
        "name": project.normalized_name,
        "versions": sorted(set(versions), key=version_key),
        "files": entries,
        "project-status": {"status": project.status},
    }
    if project.status_reason:
        body["project-status"] = {"status": project.status, "reason": project.status_reason}
    return json.dumps(body, separators=(",", ":")).encode()


def _none_if_empty(value: object) -> object:
    return value if value else None


def _file_json(file: File) -> dict[str, object]:
    return {
        "comment_text": file.comment_text or None,
        "core-metadata": {"sha256": file.metadata_sha256} if file.metadata_sha256 else False,
        "data-dist-info-metadata": (
            {"sha256": file.metadata_sha256} if file.metadata_sha256 else False
        ),
        "digests": {"blake2b_256": file.blake2_256, "md5": file.md5, "sha256": file.sha256},
        "downloads": -1,
        "filename": file.filename,
        "has_sig": False,
        "md5_digest": file.md5,
        "packagetype": file.packagetype,
        "python_version": file.python_version,
        "requires_python": file.requires_python or None,
        "size": file.size,
        "upload_time": file.upload_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "upload_time_iso_8601": upload_time(file.upload_time),
        "url": f"{BASE}/{file_path(file)}",
        "yanked": file.yanked,
        "yanked_reason": file.yanked_reason or None,
    }


def latest_release(releases: Sequence[Release]) -> Release | None:
    """PyPI's choice for the project JSON: non-yanked, then final, then highest (P81)."""
    if not releases:
        return None
    return max(
        releases,
        key=lambda r: (not r.yanked, not r.is_prerelease, version_key(r.version)),
    )


def _info(project: Project, release: Release) -> dict[str, object]:
    meta = release.metadata
    urls = meta.get("project_urls") or []
    return {
        "author": meta.get("author") or None,
        "author_email": meta.get("author_email") or None,
        "bugtrack_url": None,
        "classifiers": list(meta.get("classifiers") or []),
        "description": meta.get("description") or "",
        "description_content_type": meta.get("description_content_type") or None,
        "docs_url": None,
        "download_url": meta.get("download_url") or None,
        "downloads": {"last_day": -1, "last_month": -1, "last_week": -1},
        "dynamic": _none_if_empty(list(meta.get("dynamic") or [])),
        "home_page": meta.get("home_page") or None,
        "keywords": meta.get("keywords") or None,
        "license": meta.get("license") or None,
        "license_expression": meta.get("license_expression") or None,
        "license_files": _none_if_empty(list(meta.get("license_files") or [])),
        "maintainer": meta.get("maintainer") or None,
        "maintainer_email": meta.get("maintainer_email") or None,
        "name": project.name,
        "package_url": f"{BASE}/project/{project.normalized_name}/",
        "platform": ", ".join(meta.get("platforms") or []) or None,
        "project_url": f"{BASE}/project/{project.normalized_name}/",
        "project_urls": {label: url for label, url in urls} or None,
        "provides_extra": _none_if_empty(list(meta.get("provides_extra") or [])),
        "release_url": f"{BASE}/project/{project.normalized_name}/{release.version}/",
        "requires_dist": _none_if_empty(list(meta.get("requires_dist") or [])),
        "requires_python": release.requires_python or None,
        "summary": release.summary or None,
        "version": release.version,
        "yanked": release.yanked,
        "yanked_reason": release.yanked_reason or None,
    }


def pypi_json(
    project: Project,
    releases: Sequence[Release],
    files: Sequence[File],
    *,
    release: Release | None,
    roles: Sequence[tuple[str, str]],
    with_releases: bool,
) -> bytes | None:
    """``/pypi/<project>/json`` (release=None: the latest) or ``/pypi/<p>/<v>/json``."""
    selected = release or latest_release(releases)
    files_by_release: dict[int, list[File]] = {}
    for file in files:
        files_by_release.setdefault(file.release_id, []).append(file)
    body: dict[str, object] = {
        "info": _info(project, selected) if selected else {"name": project.name},
        "last_serial": project.serial,
        "ownership": {
            "organization": None,
            "roles": [{"role": role, "user": user} for role, user in roles],
        },
        "urls": [_file_json(f) for f in files_by_release.get(selected.pk, [])] if selected else [],
        "vulnerabilities": [],
    }
    if with_releases:
        ordered = sorted(releases, key=lambda r: version_key(r.version))
        body["releases"] = {
            r.version: [_file_json(f) for f in files_by_release.get(r.pk, [])] for r in ordered
        }
    return json.dumps(body, separators=(",", ":")).encode()
