"""A thin WSGI layer in front of Django for cache hits on ``/simple/<name>/`` and ``/simple/``.

A GET or HEAD of an already normalized project page, without a query string, whose rendering is
cached and current, is answered here with the same status, headers and body the Django view
would give (both use ``answers.page_answer``), skipping Django's middleware. Anything else: a
miss, an unknown project, a redirect, a 406, any other URL, falls through to Django unchanged.
So does a request Django would not answer 200: one naming a host outside ALLOWED_HOSTS (Django
refuses it, ``bastion.hosts``) and, when SECURE_SSL_REDIRECT is on, one not made over https.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db import close_old_connections

from bastion import hosts
from bastion.index import answers, negotiation, pages

_PROJECT_PAGE = re.compile(r"\A/simple/(?:([a-z0-9]+(?:-[a-z0-9]+)*)/)?\Z")  # or the root
_STATUS = {200: "200 OK", 304: "304 Not Modified"}

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SimplePageFastPath:
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
        answer = self._answer(environ)
        if answer is None:
            return self.application(environ, start_response)
        start_response(_STATUS[answer.status], [*answer.headers, *self.extra_headers])
        return [answer.body]

    def _answer(self, environ: dict[str, Any]) -> answers.Answer | None:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD") or environ.get("QUERY_STRING"):
            return None
        match = _PROJECT_PAGE.match(environ.get("PATH_INFO", ""))
        if match is None:
            return None
        if not hosts.host_allowed(hosts.environ_host(environ), self.allowed_hosts):
            return None  # Django answers 400
        if self.ssl_redirect and not hosts.environ_is_secure(environ, self.proxy_ssl_header):
            return None  # Django redirects to https
        chosen = negotiation.choose(environ.get("HTTP_ACCEPT"))
        if chosen is None:
            return None
        if_none_match = environ.get("HTTP_IF_NONE_MATCH")
        # Django's request_started/finished signals do this for requests it handles.
        close_old_connections()
        try:
            project = match.group(1)
            if project is None:
                kind = pages.ROOT_JSON if chosen == negotiation.JSON else pages.ROOT_HTML
                return answers.cached_root_answer(
                    kind, chosen, method=method, if_none_match=if_none_match
                )
            kind = pages.SIMPLE_JSON if chosen == negotiation.JSON else pages.SIMPLE_HTML
            return answers.cached_answer(
                project, kind, chosen, method=method, if_none_match=if_none_match
            )
        finally:
            close_old_connections()
