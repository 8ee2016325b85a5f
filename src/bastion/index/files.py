"""What a download of a distribution file (or its ``.metadata``) answers, decided once.

``plan`` turns a request into a ``Download``: the status, every header of the answer, and which
bytes of which blob. The Django view (``views.file_download``) sends any plan; the WSGI fast path
(``fastpath``) sends the plans that need no Django at all (a whole file from local storage, a
HEAD, a 304) and passes the rest on, so both answer a request with the same headers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.http import http_date

from bastion.index.answers import SECURITY_HEADERS, etag_matches
from bastion.projects.models import ProjectStatus
from bastion.storage import BlobNotFound, BlobStore, blob_store, metadata_key

FILE_CACHE = "public, max-age=31536000, immutable"
CONTENT_TYPE = "application/octet-stream"
NOT_FOUND = "404 Not Found: no such file on this index."
MISSING = "404 Not Found: the file's content is missing from storage."

# Every install fetches files: the look-up is written out in SQL, as pages.py's freshness checks
# are (the ORM took longer to build it than the database to answer it).
_SERVED_FILE_SQL = (
    "SELECT f.size, f.sha256, f.metadata_sha256, f.upload_time FROM projects_file f"
    " JOIN projects_project p ON f.project_id = p.id"
    " WHERE f.storage_key = %s AND p.status <> %s"
)
_RANGE = re.compile(r"\Abytes=(\d*)-(\d*)\Z")


@dataclass(frozen=True)
class Download:
    """``status`` 200 or 206 sends ``length`` bytes of ``blob_key`` from ``start`` (none for a
    HEAD); 302 redirects to ``location``; 304 and 416 have no body; 404 says ``message``."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    store: BlobStore | None = None
    blob_key: str = ""
    start: int = 0
    length: int = 0
    location: str = ""
    message: str = ""

    @property
    def whole_file(self) -> bool:
        return self.status == 200 and self.store is not None


def _served_file(key: str) -> tuple[int, str, str, datetime] | None:
    """(size, sha256, metadata sha256, upload time) of a file that is served (its project is
    not quarantined, PEP 792), or None."""
    with connection.cursor() as cursor:
        cursor.execute(_SERVED_FILE_SQL, (key, ProjectStatus.QUARANTINED.value))
        row = cursor.fetchone()
    if row is None:
        return None
    size, sha256, metadata_sha256, uploaded = row
    if isinstance(uploaded, str):  # SQLite hands back text; stored in UTC (USE_TZ)
        uploaded = parse_datetime(uploaded)
        assert uploaded is not None
    if timezone.is_naive(uploaded):
        uploaded = uploaded.replace(tzinfo=UTC)
    return size, sha256, metadata_sha256, uploaded


def parse_range(header: str, size: int) -> tuple[int, int] | None | str:
    """(start, end inclusive); None to serve the whole file; "unsatisfiable" for 416."""
    match = _RANGE.match(header.strip())
    if not match:
        return None  # unsupported syntax or several ranges: the whole file (RFC 9110 allows it)
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        length = int(last)
        if length == 0:
            return "unsatisfiable"
        return (max(0, size - length), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size:
        return "unsatisfiable"
    if end < start:
        return None
    return (start, min(end, size - 1))


def plan(
    path: str,
    *,
    method: str,
    if_none_match: str | None = None,
    range_header: str | None = None,
    if_range: str | None = None,
) -> Download:
    """The answer to a GET or HEAD of ``/files/<path>`` (a file key, or a key + ``.metadata``)."""
    want_metadata = path.endswith(".metadata")
    key = path[: -len(".metadata")] if want_metadata else path
    row = _served_file(key)
    if row is None or (want_metadata and not row[2]):
        return Download(404, message=NOT_FOUND)
    size, sha256, metadata_sha256, uploaded = row
    store = blob_store()
    blob_key = metadata_key(key) if want_metadata else key
    etag = '"' + (metadata_sha256 if want_metadata else sha256)[:40] + '"'
    try:
        if want_metadata:
            size = store.size(blob_key)
        redirect_url = None if want_metadata else store.url(blob_key)
    except BlobNotFound:
        return Download(404, message=MISSING)
    headers = [
        ("Accept-Ranges", "bytes"),
        ("Cache-Control", FILE_CACHE),
        ("ETag", etag),
        ("Last-Modified", http_date(uploaded.timestamp())),
        ("Access-Control-Allow-Origin", "*"),
        *SECURITY_HEADERS,
    ]
    if redirect_url is not None:
        return Download(302, location=redirect_url)
    if etag_matches(if_none_match, etag):
        return Download(304, tuple(headers))

    start, end, status = 0, size - 1, 200
    if range_header and (not if_range or if_range.strip() == etag):
        parsed = parse_range(range_header, size)
        if parsed == "unsatisfiable":
            headers.append(("Content-Range", f"bytes */{size}"))
            return Download(416, tuple(headers))
        if isinstance(parsed, tuple):
            start, end = parsed
            status = 206
            headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
    length = end - start + 1 if size else 0
    headers += [("Content-Type", CONTENT_TYPE), ("Content-Length", str(length))]
    if method == "HEAD":
        return Download(status, tuple(headers))
    return Download(status, tuple(headers), store, blob_key, start, length)
