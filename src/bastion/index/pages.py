"""Cached renderings of the read API, valid while their serial matches the project's.

A hit costs one small query (the current ETag and serial, joined to the project) and bytes from
the worker's memory (``BODIES``, keyed by the content-hash ETag). A miss renders from the rows and
stores the result; a concurrent upload only bumps the serial, so a stale rendering is never
served as current. Serials are read before the rows, so a rendering is never older than the
serial it is stored under.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction

from bastion.index import rendering
from bastion.projects.models import (
    IndexState,
    Project,
    ProjectStatus,
    Release,
    RenderedPage,
    Role,
)
from bastion.projects.queries import files_of, visible_projects

SIMPLE_HTML = "simple-html"
SIMPLE_JSON = "simple-json"
PYPI_JSON = "pypi-json"
ROOT_HTML = "root-html"
ROOT_JSON = "root-json"


@dataclass(frozen=True)
class Page:
    body: bytes
    etag: str  # quoted, strong
    serial: int


def _etag(kind: str, serial: int, body: bytes) -> str:
    """Strong, from the body and the serial: every header of the answer (X-PyPI-Last-Serial too)
    is the same under one ETag, so a cache that revalidates (the nginx front) never serves an
    old serial with a 304-confirmed body."""
    digest = hashlib.sha256(b"%s\0%d\0%s" % (kind.encode(), serial, body))
    return '"' + digest.hexdigest()[:40] + '"'


def _store(project: Project | None, kind: str, serial: int, body: bytes) -> Page:
    page = Page(body=body, etag=_etag(kind, serial, body), serial=serial)
    row = RenderedPage(
        project=project, kind=kind, serial=serial, etag=page.etag, content_type="", body=body
    )
    if project is not None:  # one statement: insert, or replace the project's older rendering
        RenderedPage.objects.bulk_create(
            [row],
            update_conflicts=True,
            unique_fields=["project", "kind"],
            update_fields=["serial", "etag", "content_type", "body"],
        )
    else:  # the root: no conflict target for a NULL project, so look it up first
        try:
            with transaction.atomic():
                RenderedPage.objects.update_or_create(
                    project=None,
                    kind=kind,
                    defaults={
                        "serial": serial,
                        "etag": page.etag,
                        "content_type": "",
                        "body": body,
                    },
                )
        except IntegrityError:  # another worker stored the same rendering first
            pass
    BODIES.put(page.etag, body)
    return page


def cached_page(project_name: str, kind: str) -> Page | None:
    """The current cached rendering, or None (a miss: not rendered yet, stale, no project).

    The freshness check is one small query (the current ETag and serial, no body); the bytes
    come from this worker's memory when it has served that ETag before. ETags hash the body,
    so a body found under an ETag is always the right one.
    """
    return with_project_body(cached_etag(project_name, kind), project_name, kind)


def with_project_body(current: Page | None, project_name: str, kind: str) -> Page | None:
    """``current`` (a project page's ETag and serial) with its body, or None."""
    return _with_body(current, project__normalized_name=project_name, kind=kind)


def with_root_body(current: Page | None, kind: str) -> Page | None:
    """``current`` (the ``/simple/`` root's ETag and serial) with its body, or None."""
    return _with_body(current, project__isnull=True, kind=kind)


def _with_body(current: Page | None, **rendering: object) -> Page | None:
    """The body under ``current.etag``: from this worker's memory, else from the rendering's row
    (``rendering`` picks it out); None when there is no current rendering or it was replaced
    between the two reads (a miss)."""
    if current is None:
        return None
    body = BODIES.get(current.etag)
    if body is None:
        row = (
            RenderedPage.objects.filter(**rendering, etag=current.etag)
            .values_list("body", flat=True)
            .first()
        )
        if row is None:
            return None
        body = bytes(row)
        BODIES.put(current.etag, body)
    return Page(body=body, etag=current.etag, serial=current.serial)


class BodyCache:
    """Rendered bodies by ETag, least recently used out first, bounded in bytes (per worker).

    Thread-safe: gunicorn's threads share it.
    """

    def __init__(self, max_bytes: int, max_item_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.max_item_bytes = max_item_bytes
        self._bodies: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, etag: str) -> bytes | None:
        with self._lock:
            body = self._bodies.get(etag)
            if body is not None:
                self._bodies.move_to_end(etag)
            return body

    def put(self, etag: str, body: bytes) -> None:
        if len(body) > self.max_item_bytes:
            return  # a huge page (the root of a big index) would evict everything else, and
            # keeping it would make memory grow with the index: it is read when needed
        with self._lock:
            if etag in self._bodies:
                return
            self._bodies[etag] = body
            self._size += len(body)
            while self._size > self.max_bytes:
                _old, evicted = self._bodies.popitem(last=False)
                self._size -= len(evicted)

    def clear(self) -> None:
        with self._lock:
            self._bodies.clear()
            self._size = 0


BODIES = BodyCache(max_bytes=64 * 1024 * 1024, max_item_bytes=1024 * 1024)


# The freshness checks of a cache hit, the hottest queries there are: written out in SQL because
# building them through the ORM costs several times what the database takes to answer them
# (bench/simple_page.py). Both read one consistent row: a rendering whose serial is the current.
_PROJECT_ETAG_SQL = (
    "SELECT r.etag, r.serial FROM projects_rendered_page r"
    " JOIN projects_project p ON r.project_id = p.id"
    " WHERE p.normalized_name = %s AND r.kind = %s AND r.serial = p.serial"
)
_ROOT_ETAG_SQL = (
    "SELECT r.etag, r.serial FROM projects_rendered_page r"
    " WHERE r.project_id IS NULL AND r.kind = %s"
    " AND r.serial = (SELECT s.projects_serial FROM projects_index_state s WHERE s.id = 1)"
)


def _etag_row(sql: str, params: tuple[str, ...]) -> Page | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else Page(body=b"", etag=row[0], serial=row[1])


def cached_etag(project_name: str, kind: str) -> Page | None:
    """The current rendering's ETag and serial only (for conditional requests); no body."""
    return _etag_row(_PROJECT_ETAG_SQL, (project_name, kind))


def project_page(normalized_name: str, kind: str) -> Page | None:
    """A project's simple page (HTML or JSON) or PyPI JSON; None if there is no such project."""
    return cached_page(normalized_name, kind) or render_project_page(normalized_name, kind)


def render_project_page(normalized_name: str, kind: str) -> Page | None:
    """Render and store the page (a cache miss); None if there is no such project.

    A quarantined project keeps a simple page without files (PEP 792) but has no PyPI JSON.
    """
    project = Project.objects.filter(normalized_name=normalized_name).first()
    if project is None:
        return None
    quarantined = project.status == ProjectStatus.QUARANTINED
    if kind == PYPI_JSON and quarantined:
        return None
    files = files_of(project)
    if kind == SIMPLE_HTML:
        body = rendering.simple_detail_html(project, files)
    elif kind == SIMPLE_JSON:
        versions = (
            []
            if quarantined
            else list(Release.objects.filter(project=project).values_list("version", flat=True))
        )
        body = rendering.simple_detail_json(project, files, versions)
    elif kind == PYPI_JSON:
        body = pypi_json_body(project, files, release=None)
    else:  # pragma: no cover
        raise ValueError(kind)
    return _store(project, kind, project.serial, body)


def pypi_json_body(project: Project, files: list, *, release: Release | None) -> bytes:  # type: ignore[type-arg]
    releases = list(Release.objects.filter(project=project))
    roles = list(
        Role.objects.filter(project=project)
        .order_by("role_name", "user__username")
        .values_list("role_name", "user__username")
    )
    if release is not None:
        files = [f for f in files if f.release_id == release.pk]
    body = rendering.pypi_json(
        project, releases, files, release=release, roles=roles, with_releases=release is None
    )
    assert body is not None
    return body


def cached_root_etag(kind: str) -> Page | None:
    """The current ``/simple/`` rendering's ETag and serial (one query), or None."""
    return _etag_row(_ROOT_ETAG_SQL, (kind,))


def cached_root(kind: str) -> Page | None:
    """The current ``/simple/`` rendering, its body from this worker's memory when it has one."""
    return with_root_body(cached_root_etag(kind), kind)


def root_page(kind: str) -> Page:
    cached = cached_root(kind)
    if cached is not None:
        return cached
    # The row is created by a migration; a flushed test database starts from serial 0.
    serial = IndexState.objects.filter(pk=1).values_list("projects_serial", flat=True).first() or 0
    projects = list(
        visible_projects().order_by("normalized_name").values_list("name", "normalized_name")
    )
    if kind == ROOT_JSON:
        body = rendering.simple_root_json(projects)
    else:
        body = rendering.simple_root_html(projects)
    return _store(None, kind, serial, body)
