"""``/tuf/``: TUF metadata (PEP 458), and the consistent-snapshot forms of targets.

- ``/tuf/N.root.json``, ``/tuf/V.targets.json``, ``/tuf/V.snapshot.json``, ``/tuf/V.bins-xyz.json``
  (immutable), ``/tuf/timestamp.json`` (short-lived);
- ``/files/<dir>/<hash>.<filename>``: the distribution ``<dir>/<filename>`` (P128);
- ``/simple/<project>/[<hash>.]index.html|index.json``: the signed simple pages.
"""

from __future__ import annotations

import logging

from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt

from bastion.core.names import normalize_name
from bastion.index.views import file_download
from bastion.projects.models import File
from bastion.signing import queries

log = logging.getLogger(__name__)

IMMUTABLE = "public, max-age=31536000, immutable"
TIMESTAMP_CACHE = "public, max-age=60"
PAGE_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "index.json": "application/vnd.pypi.simple.v1+json",
}


def _answer(body: bytes | None, *, content_type: str, cache: str, what: str) -> HttpResponse:
    if body is None:
        response = HttpResponse(
            f"404 Not Found: no {what} on this index.\n",
            status=404,
            content_type="text/plain; charset=utf-8",
        )
        response["Cache-Control"] = "no-cache"
    else:
        response = HttpResponse(body, content_type=content_type)
        response["Cache-Control"] = cache
    response["Access-Control-Allow-Origin"] = "*"
    return response


def _read_only(request: HttpRequest) -> HttpResponse | None:
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return None


@csrf_exempt
def versioned_metadata(request: HttpRequest, version: str, role: str) -> HttpResponse:
    if (refused := _read_only(request)) is not None:
        return refused
    body = queries.metadata_body(role, int(version)) if len(version) < 19 else None
    return _answer(
        body, content_type="application/json", cache=IMMUTABLE, what=f"metadata {version}.{role}"
    )


def _sign_what_changed() -> bool:
    """Sign the uploads of the last moments first, if any (``services.sign_changes``): a client
    that starts from ``timestamp.json`` sees every upload that has returned. If signing fails
    (the online key's KMS is down), the current metadata is served; the next round retries."""
    if not queries.unsigned_changes():
        return False
    from bastion.signing.services import sign_changes  # loaded on first use

    try:
        return sign_changes()
    except Exception:  # noqa: BLE001 - logged; answered from the metadata signed so far
        log.exception("signing the latest changes failed; serving the metadata signed so far")
        return False


@csrf_exempt
def current_metadata(request: HttpRequest, role: str) -> HttpResponse:
    """``timestamp.json`` (and ``root.json``: the current root, for whoever bootstraps trust)."""
    if (refused := _read_only(request)) is not None:
        return refused
    body = queries.current_body(role)
    if role == "timestamp" and body is not None and _sign_what_changed():
        body = queries.current_body(role)
    return _answer(
        body,
        content_type="application/json",
        cache=TIMESTAMP_CACHE,
        what=f"{role} metadata",
    )


@csrf_exempt
def consistent_file(
    request: HttpRequest, directory: str, digest: str, filename: str
) -> HttpResponseBase:
    """``<dir>/<hash>.<filename>`` serves ``<dir>/<filename>`` when the hash is its blake2b-256
    (what ngclient asks for: the first hash in sorted order) or its sha256."""
    key = directory + filename
    if (
        File.objects.filter(storage_key=key)
        .filter(Q(blake2_256=digest) | Q(sha256=digest))
        .exists()
    ):
        return file_download(request, key)
    return file_download(request, directory + f"{digest}.{filename}")  # a file really named so


@csrf_exempt
def signed_page(
    request: HttpRequest, project: str, page: str, digest: str | None = None
) -> HttpResponse:
    """The signed page, by its hash or the current one (Django omits the optional ``digest``
    group from the arguments when it did not match)."""
    if (refused := _read_only(request)) is not None:
        return refused
    name = normalize_name(project)
    if name != project:
        body = None
    else:
        if digest is None:  # the current page: the latest upload's, as for timestamp.json
            _sign_what_changed()
        body = queries.signed_page(f"simple/{name}/{page}", digest)
    return _answer(
        body,
        content_type=PAGE_TYPES[page],
        cache=IMMUTABLE if digest else "public, max-age=600",
        what=f"signed page simple/{project}/{page}",
    )
