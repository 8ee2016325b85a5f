"""Simple pages and downloads straight from the socket: the reads every install makes, answered
by the gunicorn worker's poller thread (``bastion.server``) from the raw request, before
gunicorn parses it.

Only a request that is plainly one of them is taken: a complete head of a GET or HEAD of
``/simple/`` or an already normalized ``/simple/<name>/``, or of a file key under ``/files/``
(or its ``.metadata``), without a query, that ends exactly where the bytes read end (no body,
nothing pipelined behind it), in a strict subset of HTTP/1.x (token field names, visible
values, no folding, no field twice, a Host, none of the fields that announce a body or a
protocol switch). Its answer must be a current page from the pre-rendered tree
(``front.serve``), or a whole file from the local store with the embedded database
(``files.plan``, a query that takes tens of microseconds), for a host Django would accept.
Everything else, a miss, a range, a 404 or a database error included, goes to gunicorn
unchanged, with the bytes already read given back to its parser.

The answer is the one gunicorn would write for ``FastPath``'s: the same status line, its
``Server``, ``Date`` and ``Connection`` fields, then the application's, and the same keep-alive
decision. This skips gunicorn's parser, the WSGI environ and response objects: most of what a
cached page costs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import BinaryIO

from django.conf import settings
from django.db import DatabaseError

from bastion import hosts
from bastion.index import fastpath, front, negotiation

MAX_HEAD = 8192  # read at once; a longer head goes to gunicorn

_REQUEST_LINE = re.compile(
    rb"\A(GET|HEAD) /simple/(?:([a-z0-9]+(?:-[a-z0-9]+)*)/)? HTTP/1\.([01])\Z"
)
# A download: a file key (storage.base) or a key + ".metadata", its name spelled as stored (a
# "%" escape goes to gunicorn); "<64 hex>.<name>" is the consistent-snapshot view's (urls.py).
_DOWNLOAD_LINE = re.compile(
    rb"\A(GET|HEAD) /files/([0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{60}/(?![0-9a-f]{64}\.)"
    rb"[A-Za-z0-9._+!-]{1,300}) HTTP/1\.([01])\Z"
)
# A token name (RFC 9110 5.1) without "_" (gunicorn drops such fields), then a value of visible
# characters and inner spaces or tabs (5.5), optional whitespace around it.
_FIELD = re.compile(
    rb"\A([!#$%&'*+.^`|~0-9A-Za-z-]+):[ \t]*"
    rb"((?:[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?)?)[ \t]*\Z"
)
# Fields that announce a body, a protocol switch or an expectation: gunicorn decides those.
_DECLINED = frozenset(
    {b"content-length", b"transfer-encoding", b"expect", b"upgrade", b"http2-settings", b"te"}
)
_MAX_FIELDS = 100  # gunicorn's limit_request_fields
_REASONS = {200: b"200 OK", 304: b"304 Not Modified"}


@dataclass(frozen=True)
class Reply:
    """What to write: the head, then ``body`` (bytes, an open file of ``length`` bytes, or
    nothing); ``keep_alive`` says whether the connection stays open after it."""

    head: bytes
    body: bytes | BinaryIO | None
    length: int
    keep_alive: bool


class Wire:
    read_size = MAX_HEAD + 1  # one byte more tells a head that is too long

    def __init__(self, fast_path: fastpath.FastPath) -> None:
        self.allowed_hosts = fast_path.allowed_hosts
        # Extra answer headers (HSTS), written as gunicorn writes the application's.
        self.extra = b"".join(
            f"{name}: {value}\r\n".encode("latin-1") for name, value in fast_path.extra_headers
        )
        self._chosen: dict[bytes | None, str | None] = {}
        self._date = (0, b"")
        self.local_files = settings.BASTION.embedded  # SQLite and local files (see _download)

    def reply(self, data: bytes, *, may_keep_alive: bool) -> Reply | None:
        """The answer to the raw request ``data``, or None when gunicorn and Django must give
        it. ``may_keep_alive`` is the worker's say (it is not stopping, it has room)."""
        if len(data) > MAX_HEAD or not data.endswith(b"\r\n\r\n"):
            return None
        lines = data[:-4].split(b"\r\n")
        request = _REQUEST_LINE.match(lines[0]) or _DOWNLOAD_LINE.match(lines[0])
        if request is None or len(lines) - 1 > _MAX_FIELDS:
            return None
        method, target, minor = request.groups()
        fields: dict[bytes, bytes] = {}
        for line in lines[1:]:
            field = _FIELD.match(line)
            if field is None:
                return None  # malformed, folded, a control character: gunicorn's parser
            name = field.group(1).lower()
            if name in fields or name in _DECLINED:
                return None
            fields[name] = field.group(2)
        host = fields.get(b"host")
        if host is None or not hosts.host_allowed(host.decode("latin-1"), self.allowed_hosts):
            return None  # Django answers 400 (or HTTP/1.0 without Host: its SERVER_NAME rule)
        etags = fields.get(b"if-none-match")
        if_none_match = None if etags is None else etags.decode("latin-1")
        verb = "HEAD" if method == b"HEAD" else "GET"
        if request.re is _DOWNLOAD_LINE:
            if b"range" in fields:
                return None  # a part of the file: FastPath and Django
            served = self._download(target.decode("ascii"), verb, if_none_match)
            if served is None:
                return None  # object storage, a 404, a database not answering: Django
        else:
            chosen = self._choose(fields.get(b"accept"))
            if chosen is None:
                return None  # Django's 406
            project = None if target is None else target.decode("ascii")
            served = front.serve(project, chosen, method=verb, if_none_match=if_none_match)
            if served is None:
                return None  # not in the tree: FastPath's cache, or Django, renders it
        # gunicorn: the client's Connection field first, else HTTP/1.0 closes, 1.1 stays open.
        connection = fields.get(b"connection", b"").strip(b" \t").lower()
        if connection == b"close":
            keep_alive = False
        elif connection == b"keep-alive":
            keep_alive = True
        else:
            keep_alive = minor == b"1"
        keep_alive = keep_alive and may_keep_alive
        length = 0
        for name, value in served.headers:
            if name == "Content-Length":
                length = int(value)
        head = b"".join(
            (
                b"HTTP/1.",
                minor,
                b" ",
                _REASONS[served.status],
                b"\r\nServer: gunicorn\r\nDate: ",
                self._http_date(),
                b"\r\nConnection: keep-alive\r\n" if keep_alive else b"\r\nConnection: close\r\n",
                *(f"{name}: {value}\r\n".encode("latin-1") for name, value in served.headers),
                self.extra,
                b"\r\n",
            )
        )
        body = served.body  # None for a HEAD or a 304 (front.serve)
        return Reply(head, body, length if body is not None else 0, keep_alive)

    def _download(self, path: str, method: str, if_none_match: str | None) -> front.Served | None:
        """A download from the local store, as ``FastPath`` answers it: its one look-up is a
        query of the embedded database, quick enough for this thread; with another database,
        or files elsewhere, a pool thread answers."""
        if not self.local_files:
            return None
        try:
            found = fastpath.local_download(path, method, if_none_match)
        except DatabaseError:
            return None  # Django's outage answer (503)
        if found is None:
            return None
        download, handle = found
        body: bytes | BinaryIO | None = handle  # a large file: sent by a pool thread (sendfile)
        if handle is not None:
            small = fastpath.read_if_small(handle, download.length)
            body = handle if small is None else small
        return front.Served(download.status, download.headers, body)

    def _choose(self, accept: bytes | None) -> str | None:
        try:
            return self._chosen[accept]
        except KeyError:
            pass
        chosen = negotiation.choose(None if accept is None else accept.decode("latin-1"))
        if len(self._chosen) < 256:  # the few distinct Accept values of real clients
            self._chosen[accept] = chosen
        return chosen

    def _http_date(self, clock: Callable[[], float] = time.time) -> bytes:
        now = int(clock())
        second, text = self._date
        if second != now:
            text = formatdate(now, usegmt=True).encode("ascii")
            self._date = (now, text)
        return text
