"""Read endpoints: the simple API, the PyPI JSON API, distribution files and health."""

from __future__ import annotations

import json
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseNotAllowed,
    HttpResponsePermanentRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import redirect
from django.views.decorators.csrf import csrf_exempt

from bastion.core.names import normalize_name
from bastion.index import answers, files, front, negotiation, pages
from bastion.index.rendering import BASE, version_key
from bastion.projects.models import Project, ProjectStatus, Release
from bastion.projects.queries import files_of
from bastion.storage import BlobNotFound, blob_store, file_key
from bastion.storage.local import LocalBlobStore

JSON_API_CACHE = "public, max-age=900"


def _not_found(message: str) -> HttpResponse:
    response = HttpResponse(message + "\n", status=404, content_type="text/plain; charset=utf-8")
    response["Access-Control-Allow-Origin"] = "*"
    return response


def _negotiate(request: HttpRequest) -> str | None:
    requested = request.GET.get("format")
    if requested:
        requested = requested.replace(" ", "+")  # an unescaped "+" in a query string reads as " "
        chosen = negotiation.from_format_parameter(requested)
        if chosen is not None:
            return chosen
    return negotiation.choose(request.headers.get("Accept"))


def _not_acceptable() -> HttpResponse:
    response = HttpResponse(
        "406 Not Acceptable: ask for application/vnd.pypi.simple.v1+json, "
        "application/vnd.pypi.simple.v1+html or text/html.\n",
        status=406,
        content_type="text/plain; charset=utf-8",
    )
    response["Vary"] = "Accept"
    return response


def _answer_response(answer: answers.Answer) -> HttpResponse:
    response = HttpResponse(answer.body, status=answer.status)
    for name, value in answer.headers:
        response[name] = value
    if answer.status == 304:
        del response["Content-Type"]
    return response


def _read_only(request: HttpRequest) -> HttpResponse | None:
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return None


@csrf_exempt  # read-only: other methods get 405, not a CSRF 403
def simple_root(request: HttpRequest) -> HttpResponse:
    if (refused := _read_only(request)) is not None:
        return refused
    chosen = _negotiate(request)
    if chosen is None:
        return _not_acceptable()
    kind = pages.ROOT_JSON if chosen == negotiation.JSON else pages.ROOT_HTML
    answer = answers.page_answer(
        pages.root_page(kind),
        chosen,
        method=request.method or "GET",
        if_none_match=request.headers.get("If-None-Match"),
    )
    front.publish(None)  # nothing to do when the tree already has it
    return _answer_response(answer)


@csrf_exempt  # read-only: other methods get 405, not a CSRF 403
def simple_detail(request: HttpRequest, project: str) -> HttpResponseBase:
    if (refused := _read_only(request)) is not None:
        return refused
    normalized = normalize_name(project)
    if normalized != project:
        return HttpResponsePermanentRedirect(f"/simple/{normalized}/")
    chosen = _negotiate(request)
    if chosen is None:
        return _not_acceptable()
    kind = pages.SIMPLE_JSON if chosen == negotiation.JSON else pages.SIMPLE_HTML
    method = request.method or "GET"
    if_none_match = request.headers.get("If-None-Match")
    answer = answers.cached_answer(
        normalized, kind, chosen, method=method, if_none_match=if_none_match
    )
    if answer is None:
        page = pages.render_project_page(normalized, kind)
        if page is None:
            response = _not_found(f"404 Not Found: no project named {project!r} on this index.")
            response["Vary"] = "Accept"
            return response
        answer = answers.page_answer(page, chosen, method=method, if_none_match=if_none_match)
    front.publish(normalized)  # nothing to do when the tree already has it
    return _answer_response(answer)


@csrf_exempt  # read-only: other methods get 405, not a CSRF 403
def simple_slashless(request: HttpRequest, project: str) -> HttpResponseBase:
    return HttpResponsePermanentRedirect(f"/simple/{normalize_name(project)}/")


def _origin() -> bytes:
    """The public origin for absolute URLs: BASTION_BASE_URL, never the request's Host."""
    return json.dumps(settings.BASTION.base_url)[1:-1].encode()  # as it reads inside a string


def _json_response(request: HttpRequest, body: bytes, serial: int, etag: str) -> HttpResponse:
    headers = {
        "ETag": etag,
        "Cache-Control": JSON_API_CACHE,
        "X-PyPI-Last-Serial": str(serial),
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Expose-Headers": "X-PyPI-Last-Serial",
    }
    if answers.etag_matches(request.headers.get("If-None-Match"), etag):
        return HttpResponse(status=304, headers=headers)
    body = body.replace(BASE.encode(), _origin())
    return HttpResponse(
        b"" if request.method == "HEAD" else body,
        content_type="application/json",
        headers=headers,
    )


@csrf_exempt  # read-only: other methods get 405, not a CSRF 403
def pypi_project_json(request: HttpRequest, project: str) -> HttpResponseBase:
    if (refused := _read_only(request)) is not None:
        return refused
    normalized = normalize_name(project)
    if normalized != project:
        return HttpResponsePermanentRedirect(f"/pypi/{normalized}/json")
    page = pages.project_page(normalized, pages.PYPI_JSON)
    if page is None:
        return _not_found(f"404 Not Found: no project named {project!r} on this index.")
    return _json_response(request, page.body, page.serial, page.etag)


@csrf_exempt  # read-only: other methods get 405, not a CSRF 403
def pypi_release_json(request: HttpRequest, project: str, version: str) -> HttpResponseBase:
    if (refused := _read_only(request)) is not None:
        return refused
    normalized = normalize_name(project)
    if normalized != project:
        return HttpResponsePermanentRedirect(f"/pypi/{normalized}/{version}/json")
    found = Project.objects.filter(normalized_name=normalized).first()
    if found is None or found.status == ProjectStatus.QUARANTINED:
        return _not_found(f"404 Not Found: no project named {project!r} on this index.")
    release = _find_release(found, version)
    if release is None:
        return _not_found(f"404 Not Found: {found.name} has no release {version!r}.")
    body = pages.pypi_json_body(found, files_of(found), release=release)
    etag = '"' + str(found.serial) + "-" + str(release.pk) + '"'
    return _json_response(request, body, found.serial, etag)


def _find_release(project: Project, version: str) -> Release | None:
    """Exact version string first, then the canonical form (P80, P107)."""
    from bastion.core.versions import canonical_version, parse_version

    exact = Release.objects.filter(project=project, version=version).first()
    if exact is not None:
        return exact
    try:
        canonical = canonical_version(parse_version(version))
    except ValueError:
        return None
    return Release.objects.filter(project=project, canonical_version=canonical).first()


@csrf_exempt
def file_download(request: HttpRequest, path: str) -> HttpResponseBase:
    if (refused := _read_only(request)) is not None:
        return refused
    download = files.plan(
        path,
        method=request.method or "GET",
        if_none_match=request.headers.get("If-None-Match"),
        range_header=request.headers.get("Range"),
        if_range=request.headers.get("If-Range"),
    )
    if download.status == 404:
        return _not_found(download.message)
    if download.status == 302:
        moved = redirect(download.location)
        moved["Cache-Control"] = "private, max-age=60"
        return moved
    response: HttpResponseBase
    if download.store is None:  # 304, 416 or a HEAD: headers only
        response = HttpResponse(b"", status=download.status)
        if download.status == 304:
            del response["Content-Type"]
    elif download.whole_file and isinstance(download.store, LocalBlobStore):
        try:  # sendfile-capable full download
            handle = open(download.store.local_path(download.blob_key), "rb")
        except FileNotFoundError:
            return _not_found(files.MISSING)
        response = FileResponse(handle, status=200)
    else:
        try:
            chunks = download.store.read(
                download.blob_key, start=download.start, length=download.length
            )
        except BlobNotFound:
            return _not_found(files.MISSING)
        response = StreamingHttpResponse(chunks, status=download.status)
    for name, value in download.headers:
        response[name] = value
    if "Content-Disposition" in response:
        del response["Content-Disposition"]
    return response


def _check(probe: Callable[[], object]) -> str:
    try:
        probe()
    except Exception:  # noqa: BLE001 - health reports any failure of a dependency as such
        return "unavailable"
    return "ok"


# A key no upload can have (no blake2b digest is all zeros): a look-up that finds nothing.
_PROBE_KEY = file_key("0" * 64, "healthz-probe")


def _database_probe() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness and the state of each dependency: 200 when all answer, else 503 naming the one
    that does not (``database``, ``storage``, and ``redis`` when BASTION_REDIS_URL is set)."""
    from django.conf import settings
    from django.core.cache import cache

    checks = {
        "database": _check(_database_probe),
        "storage": _check(lambda: blob_store().exists(_PROBE_KEY)),
    }
    if settings.BASTION.redis_url:
        checks["redis"] = _check(lambda: cache.get("bastion:healthz"))
    healthy = all(state == "ok" for state in checks.values())
    body = {"status": "ok" if healthy else "degraded", **checks}
    down = [name for name, state in checks.items() if state != "ok"]
    response = HttpResponse(
        json.dumps(body),
        status=200 if healthy else 503,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
    if down:
        response.reason_phrase = "Service Unavailable: " + ", ".join(down) + " unavailable"
    return response


__all__ = [
    "file_download",
    "healthz",
    "pypi_project_json",
    "pypi_release_json",
    "simple_detail",
    "simple_root",
    "simple_slashless",
    "version_key",
]
