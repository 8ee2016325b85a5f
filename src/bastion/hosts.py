"""The Host header never reaches an answer (DESIGN.md: absolute URLs come from BASTION_BASE_URL).

``settings.ALLOWED_HOSTS`` comes from ``bastion.config.allowed_hosts``; the decision about one
request is ``host_allowed``, shared by Django (through ``request.get_host()``) and the WSGI fast
path. Django checks ALLOWED_HOSTS only when something calls ``get_host()``, so
``HostCheckMiddleware``, first in MIDDLEWARE, calls it on every request and refuses a foreign
Host with a one-line 400, except for ``/healthz``, which load balancers probe by node address.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.http.request import split_domain_port, validate_host

logger = logging.getLogger(__name__)

HEALTHZ = "/healthz"
HSTS = "Strict-Transport-Security"


@functools.lru_cache(maxsize=256)
def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """Whether a raw Host value (``name[:port]``) passes ALLOWED_HOSTS, exactly as Django's
    ``HttpRequest.get_host()`` decides it. Cached: a few distinct hosts carry all real traffic."""
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, allowed)


def environ_host(environ: Mapping[str, Any]) -> str:
    """The host a WSGI request names, read as Django reads it: the Host header, else (HTTP/1.0
    without one) the server's own SERVER_NAME, which the client does not choose. The port does
    not matter to the decision. X-Forwarded-Host is never trusted (USE_X_FORWARDED_HOST off)."""
    if "HTTP_HOST" in environ:
        return str(environ["HTTP_HOST"])
    return str(environ.get("SERVER_NAME", ""))


def environ_is_secure(environ: Mapping[str, Any], proxy_header: tuple[str, str] | None) -> bool:
    """``HttpRequest.is_secure()`` for a bare WSGI environ (same SECURE_PROXY_SSL_HEADER rule)."""
    if proxy_header is not None:
        name, secure_value = proxy_header
        value = environ.get(name)
        if value is not None:
            return str(value).split(",", 1)[0].strip() == secure_value
    return environ.get("wsgi.url_scheme") == "https"


def hsts_value() -> str | None:
    """The Strict-Transport-Security value of an https index, or None.

    Django's SecurityMiddleware adds it only to requests it sees as secure, which behind a
    TLS-terminating proxy without BASTION_PROXY_SSL_HEADER is none. Browsers ignore the header
    on plain http (RFC 6797, 8.1), so an https index sends it on every answer.
    """
    seconds = settings.SECURE_HSTS_SECONDS
    if not seconds or urlsplit(settings.BASTION.base_url).scheme != "https":
        return None
    value = f"max-age={seconds}"
    if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
        value += "; includeSubDomains"
    if settings.SECURE_HSTS_PRELOAD:
        value += "; preload"
    return value


def unknown_host() -> HttpResponse:
    """The refusal: plain text, one line, naming the index's own host and never the one asked."""
    own = urlsplit(settings.BASTION.base_url).netloc
    body = f"400 Bad Request: unknown host; this index answers as {own}\n".encode()
    return HttpResponse(
        body,
        status=400,
        reason="Bad Request: unknown host",
        content_type="text/plain; charset=utf-8",
        headers={"Cache-Control": "no-store", "Content-Length": str(len(body))},
    )


class HostCheckMiddleware:
    """First middleware: ``/healthz`` for any Host, then 400 for a Host not in ALLOWED_HOSTS.

    It runs before CommonMiddleware, whose ``get_host()`` call would otherwise turn a foreign
    Host into Django's HTML 400 (and an ERROR log line per probe), and before SecurityMiddleware,
    so health probes over plain http are never redirected to https.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        from bastion.index.views import healthz  # views need the app registry, ready by now

        self.get_response = get_response
        self.healthz = healthz

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.path_info == HEALTHZ:
            health = self.healthz(request)
            # (CommonMiddleware, which would add it, does not see this answer)
            health["Content-Length"] = str(len(health.content))
            return health
        try:
            request.get_host()
        except DisallowedHost:
            logger.debug("refused unknown host %r", str(request.META.get("HTTP_HOST", ""))[:100])
            return unknown_host()
        response = self.get_response(request)
        hsts = hsts_value()
        if hsts is not None and HSTS not in response:
            response[HSTS] = hsts
        return response


__all__ = [
    "HEALTHZ",
    "HostCheckMiddleware",
    "environ_host",
    "environ_is_secure",
    "host_allowed",
    "hsts_value",
    "unknown_host",
]
