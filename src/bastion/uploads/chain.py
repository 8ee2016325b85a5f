"""The upload endpoint's own Django handler: ``settings.UPLOAD_MIDDLEWARE`` instead of the
whole ``MIDDLEWARE`` chain (``bastion.wsgi``; Django's test client keeps the whole chain)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

# What the URLconf routes to the upload view (``^legacy/?$``).
UPLOAD_PATHS = frozenset({"/legacy/", "/legacy"})


def handler_with(middleware: list[str]) -> WSGIHandler:
    """A Django WSGI handler whose middleware chain is ``middleware``. Django reads the setting
    once, when a handler is made; it is made at import, before the worker takes requests."""
    every = settings.MIDDLEWARE
    settings.MIDDLEWARE = middleware
    try:
        return WSGIHandler()
    finally:
        settings.MIDDLEWARE = every


class UploadsApart:
    """Requests for the upload endpoint go to ``uploads``, every other one to ``pages``."""

    def __init__(self, pages: WSGIHandler, uploads: WSGIHandler) -> None:
        self.pages = pages
        self.uploads = uploads

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in UPLOAD_PATHS:
            return self.uploads(environ, start_response)
        return self.pages(environ, start_response)
