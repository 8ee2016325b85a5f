"""A thin WSGI layer in front of Django for the reads every install makes: cache hits on
``/simple/<name>/`` and ``/simple/``, and downloads from ``/files/``.

A GET or HEAD of an already normalized project page, without a query string, whose rendering is
cached and current, is answered here with the same status, headers and body the Django view
would give (both use ``answers.page_answer``), skipping Django's middleware. So is a download
whose plan (``files.plan``, which the view sends too) is a whole file from local storage, a HEAD
or a 304. Anything else: a miss, an unknown project or file, a redirect, a 406, a range, a file
in object storage, any other URL, falls through to Django unchanged. So does a request Django
would not answer 200: one naming a host outside ALLOWED_HOSTS (Django refuses it,
``bastion.hosts``) and, when SECURE_SSL_REDIRECT is on, one not made over https.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

from django.conf import settings
from django.db import close_old_connections

from bastion import hosts
from bastion.index import answers, files, front, negotiation, pages
from bastion.storage.local import LocalBlobStore

_PROJECT_PAGE = re.compile(r"\A/simple/(?:([a-z0-9]+(?:-[a-z0-9]+)*)/)?\Z")  # or the root
# A file key (urls.py); a last segment "<64 hex>.<name>" is routed to the consistent-snapshot
# view first there, so it is left to Django here.
_FILE = re.compile(r"\A/files/([0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{60}/(?![0-9a-f]{64}\.)[^/]+)\Z")
_STATUS = {200: "200 OK", 304: "304 Not Modified"}
_FILE_BLOCK = 64 * 1024
SMALL_FILE = 256 * 1024  # files up to this size are read and written in one piece

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class FastPath:
    def __init__(self, application: WSGIApp) -> None:
        self.application = application
        # Read once: the settings Django's get_host() and SecurityMiddleware decide with.
        self.allowed_hosts = tuple(settings.ALLOWED_HOSTS)
        self.ssl_redirect = bool(settings.SECURE_SSL_REDIRECT)
        self.proxy_ssl_header: tuple[str, str] | None = settings.SECURE_PROXY_SSL_HEADER
        hsts = hosts.hsts_value()  # what HostCheckMiddleware adds to Django's answers
        self.extra_headers: tuple[tuple[str, str], ...] = ((hosts.HSTS, hsts),) if hsts else ()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method in ("GET", "HEAD") and not environ.get("QUERY_STRING") and self._allowed(environ):
            path = environ.get("PATH_INFO", "")
            page = _PROJECT_PAGE.match(path)
            chosen = negotiation.choose(environ.get("HTTP_ACCEPT")) if page else None
            if page is not None and chosen is not None:
                if_none_match = environ.get("HTTP_IF_NONE_MATCH")
                # From the pre-rendered tree (no database at all), else from the cache.
                served = front.serve(
                    page.group(1), chosen, method=method, if_none_match=if_none_match
                )
                if served is not None:
                    start_response(_STATUS[served.status], [*served.headers, *self.extra_headers])
                    if served.body is None:
                        return []
                    if isinstance(served.body, bytes):
                        return [served.body]
                    return _stream(served.body, environ)
                answer = self._page(page.group(1), chosen, method, if_none_match)
                if answer is not None:
                    start_response(_STATUS[answer.status], [*answer.headers, *self.extra_headers])
                    return [answer.body]
            elif (file := _FILE.match(path)) is not None and "HTTP_RANGE" not in environ:
                body = self._file(file.group(1), method, environ, start_response)
                if body is not None:
                    return body
        return self.application(environ, start_response)

    def _allowed(self, environ: dict[str, Any]) -> bool:
        if not hosts.host_allowed(hosts.environ_host(environ), self.allowed_hosts):
            return False  # Django answers 400
        # Django redirects to https
        return not self.ssl_redirect or hosts.environ_is_secure(environ, self.proxy_ssl_header)

    def _file(
        self,
        path: str,
        method: str,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
    ) -> Iterable[bytes] | None:
        found = local_download(path, method, environ.get("HTTP_IF_NONE_MATCH"))
        if found is None:
            return None
        download, handle = found
        body = [] if handle is None else _whole(handle, download.length, environ)
        start_response(_STATUS[download.status], [*download.headers, *self.extra_headers])
        return body

    def _page(
        self, project: str | None, chosen: str, method: str, if_none_match: str | None
    ) -> answers.Answer | None:
        # Django's request_started/finished signals do this for requests it handles.
        close_old_connections()
        try:
            if project is None:
                kind = pages.ROOT_JSON if chosen == negotiation.JSON else pages.ROOT_HTML
                answer = answers.cached_root_answer(
                    kind, chosen, method=method, if_none_match=if_none_match
                )
            else:
                kind = pages.SIMPLE_JSON if chosen == negotiation.JSON else pages.SIMPLE_HTML
                answer = answers.cached_answer(
                    project, kind, chosen, method=method, if_none_match=if_none_match
                )
            if answer is not None:
                front.publish(project)  # the tree (and the nginx front) serve the next one
            return answer
        finally:
            close_old_connections()


def local_download(
    path: str, method: str, if_none_match: str | None
) -> tuple[files.Download, BinaryIO | None] | None:
    """A download of ``/files/<path>`` that is a 200 or a 304 from the local store: its plan
    (``files.plan``) and its open file (None for a HEAD or a 304), for ``FastPath`` and the
    poller (``wire``) to send. None for anything Django answers: a 404, a redirect, a file in
    object storage, content missing from the store."""
    close_old_connections()  # what Django's request signals do around a request
    try:
        download = files.plan(path, method=method, if_none_match=if_none_match)
    finally:
        close_old_connections()
    if download.status not in _STATUS:
        return None  # 404, a redirect: Django's answer
    if download.store is None:
        return download, None
    if not isinstance(download.store, LocalBlobStore):
        return None  # streamed from object storage by the view
    try:
        return download, open(download.store.local_path(download.blob_key), "rb")
    except FileNotFoundError:
        return None  # Django's 404 says the content is missing


def _whole(handle: Any, length: int, environ: dict[str, Any]) -> Iterable[bytes]:
    """An open file of ``length`` bytes: read at once when small, else streamed."""
    small = read_if_small(handle, length)
    return [small] if small is not None else _stream(handle, environ)


def read_if_small(handle: BinaryIO, length: int) -> bytes | None:
    """A small file's bytes, read at once and closed (one write is cheaper than Python's
    sendfile loop); None, the file left open, for a larger one to stream."""
    if length > SMALL_FILE:
        return None
    with handle:
        return handle.read()


def _stream(handle: Any, environ: dict[str, Any]) -> Iterable[bytes]:
    """An open file with the server's sendfile (gunicorn's wsgi.file_wrapper), or in blocks."""
    wrapper = environ.get("wsgi.file_wrapper")
    return wrapper(handle, _FILE_BLOCK) if wrapper else _blocks(handle)


def _blocks(handle: Any) -> Iterable[bytes]:
    with handle:
        while block := handle.read(_FILE_BLOCK):
            yield block
