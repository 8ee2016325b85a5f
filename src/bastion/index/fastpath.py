"""A thin WSGI layer in front of Django for cache hits on ``/simple/<name>/`` (DESIGN.md).

A GET or HEAD of an already normalized project page, without a query string, whose rendering is
cached and current, is answered here with the same status, headers and body the Django view
would give (both use ``answers.page_answer``), skipping Django's middleware. Anything else: a
miss, an unknown project, a redirect, a 406, any other URL, falls through to Django unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from django.db import close_old_connections

from bastion.index import answers, negotiation, pages

_PROJECT_PAGE = re.compile(r"\A/simple/([a-z0-9]+(?:-[a-z0-9]+)*)/\Z")
_STATUS = {200: "200 OK", 304: "304 Not Modified"}

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SimplePageFastPath:
    def __init__(self, application: WSGIApp) -> None:
        self.application = application

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        answer = self._answer(environ)
        if answer is None:
            return self.application(environ, start_response)
        start_response(_STATUS[answer.status], list(answer.headers))
        return [answer.body]

    def _answer(self, environ: dict[str, Any]) -> answers.Answer | None:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD") or environ.get("QUERY_STRING"):
            return None
        match = _PROJECT_PAGE.match(environ.get("PATH_INFO", ""))
        if match is None:
            return None
        chosen = negotiation.choose(environ.get("HTTP_ACCEPT"))
        if chosen is None:
            return None
        kind = pages.SIMPLE_JSON if chosen == negotiation.JSON else pages.SIMPLE_HTML
        if_none_match = environ.get("HTTP_IF_NONE_MATCH")
        # Django's request_started/finished signals do this for requests it handles.
        close_old_connections()
        try:
            return answers.cached_answer(
                match.group(1), kind, chosen, method=method, if_none_match=if_none_match
            )
        finally:
            close_old_connections()
