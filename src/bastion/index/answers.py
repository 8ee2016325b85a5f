"""The response to a simple-page request, as plain data (status, headers, body).

Both the Django view and the WSGI fast path (``fastpath``) send exactly this, so a cache hit
answered without Django carries the same headers as one answered through it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bastion.headers import CONTENT_SECURITY_POLICY
from bastion.index import negotiation, pages
from bastion.index.pages import Page

SIMPLE_CACHE = "public, max-age=600"
CONTENT_TYPES = {
    negotiation.JSON: "application/vnd.pypi.simple.v1+json",
    negotiation.V1_HTML: "application/vnd.pypi.simple.v1+html",
    negotiation.TEXT_HTML: "text/html; charset=utf-8",
}
# What Django's security and clickjacking middleware and ours would add: both paths agree.
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    return etag in [candidate.strip() for candidate in header.split(",")]


def representation_etag(page: Page, content_type: str) -> str:
    if content_type == negotiation.TEXT_HTML:
        return page.etag[:-1] + '-h"'  # same bytes as v1+html, another representation (P16)
    return page.etag


def page_answer(page: Page, content_type: str, *, method: str, if_none_match: str | None) -> Answer:
    status, headers = page_head(
        page, content_type, length=len(page.body), if_none_match=if_none_match
    )
    return Answer(status, headers, b"" if status == 304 or method == "HEAD" else page.body)


def page_head(
    page: Page, content_type: str, *, length: int, if_none_match: str | None
) -> tuple[int, tuple[tuple[str, str], ...]]:
    """Status (200, or 304 when ``if_none_match`` names the page's ETag) and headers of the
    answer with a page of ``length`` bytes: the same wherever the bytes come from."""
    etag = representation_etag(page, content_type)
    headers = [
        ("Vary", "Accept"),
        ("ETag", etag),
        ("Cache-Control", SIMPLE_CACHE),
        ("X-PyPI-Last-Serial", str(page.serial)),
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Expose-Headers", "X-PyPI-Last-Serial"),
        *SECURITY_HEADERS,
        # For the nginx front (deploy/nginx/bastion.conf), which hides it from clients: keep the
        # page, but as already expired, so every hit asks a node "still this ETag?" (a 304).
        ("X-Accel-Expires", "@1"),
    ]
    if etag_matches(if_none_match, etag):
        return 304, tuple(headers)
    headers.append(("Content-Type", CONTENT_TYPES[content_type]))
    headers.append(("Content-Length", str(length)))
    return 200, tuple(headers)


def cached_answer(
    project_name: str, kind: str, content_type: str, *, method: str, if_none_match: str | None
) -> Answer | None:
    """The answer from the current cached rendering, or None on a miss.

    One freshness query (the current ETag); a revalidation whose ETag is current gets its 304
    from it alone, without loading the page body.
    """
    return _from_cache(
        pages.cached_etag(project_name, kind),
        lambda current: pages.with_project_body(current, project_name, kind),
        content_type,
        method=method,
        if_none_match=if_none_match,
    )


def cached_root_answer(
    kind: str, content_type: str, *, method: str, if_none_match: str | None
) -> Answer | None:
    """``cached_answer`` for the ``/simple/`` root."""
    return _from_cache(
        pages.cached_root_etag(kind),
        lambda current: pages.with_root_body(current, kind),
        content_type,
        method=method,
        if_none_match=if_none_match,
    )


def _from_cache(
    current: Page | None,
    with_body: Callable[[Page], Page | None],
    content_type: str,
    *,
    method: str,
    if_none_match: str | None,
) -> Answer | None:
    if current is None:
        return None
    if not etag_matches(if_none_match, representation_etag(current, content_type)):
        page = with_body(current)
        if page is None:
            return None
        current = page
    return page_answer(current, content_type, method=method, if_none_match=if_none_match)
