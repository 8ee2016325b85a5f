"""Simple pages pre-rendered for the nginx front, so that a hit never reaches Python.

With ``BASTION_FRONT_PAGES_DIR`` set (a directory every node writes and nginx reads:
deploy/nginx/bastion.conf), the tree holds, per project (and ``_root`` for ``/simple/``)::

    simple/<name>  ->  ../pages/<name>/<serial>.<JSON etag>.<HTML etag>/   (a symlink)
    pages/<name>/<serial>.<JSON etag>.<HTML etag>/index.json, index.html, index.v1html

A content directory never changes once in place; the link says which one is current, and nginx
reads the serial and the ETags (the headers bastion sends) from the link's resolved path.

- A node that answers a page whose link is missing publishes it: it renders both forms at one
  serial, writes the directory, then, holding the name's lock (a file under ``locks/`` that a
  few names share), links it only if that serial is still the current one (one query).
- A change (upload, yank, deletion, a new project for the root) removes the link, holding the
  same lock, once its transaction has committed and before its request returns: nginx sends the
  next request to a node until a node has published the new page. A rendering begun before the
  change is either linked before the removal (and removed with it) or refused by the serial
  check after it, so a stale page is never linked once an upload has returned.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import connection, transaction

from bastion.index import answers, negotiation, pages

log = logging.getLogger(__name__)

ROOT = "_root"  # not a normalized project name, so never a project's
_NAME = re.compile(r"\A(?:[a-z0-9]+(?:-[a-z0-9]+)*|_root)\Z")
_LEAF = re.compile(r"\A([0-9]+)\.([0-9a-f]{40})\.([0-9a-f]{40})\Z")
_FILES = {
    negotiation.JSON: "index.json",
    negotiation.V1_HTML: "index.v1html",
    negotiation.TEXT_HTML: "index.html",
}
_publish_failed = False  # logged in full once per process
_SUPERSEDED_GRACE = 60.0  # seconds a replaced rendering stays for requests already reading it


def directory() -> Path | None:
    configured: Path | None = settings.BASTION.front_pages_dir
    return configured


def _link(tree: Path, name: str) -> Path:
    if not _NAME.match(name):
        raise ValueError(f"not a page name: {name!r}")
    return tree / "simple" / name


LOCK_FILES = 64  # names share this many lock files, made once: a file made per name cost
# ~0.13 ms of every new project's upload (measured live; an open of an existing file: ~5 us)


def lock_path(tree: Path, name: str) -> Path:
    """The lock file of ``name``'s page: one of ``LOCK_FILES``, by a hash every node agrees on
    (two names may share one; a thread only ever holds one at a time, so that cannot
    deadlock)."""
    return tree / "locks" / f"{zlib.crc32(name.encode()) % LOCK_FILES:02d}.lock"


@contextmanager
def _locked(tree: Path, name: str) -> Iterator[None]:
    path = lock_path(tree, name)
    try:  # flock needs no write access
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    except FileNotFoundError:  # the first lock taken in this tree
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _current_serial(name: str) -> int | None:
    with connection.cursor() as cursor:
        if name == ROOT:
            cursor.execute("SELECT projects_serial FROM projects_index_state WHERE id = 1")
        else:
            cursor.execute(
                "SELECT serial FROM projects_project WHERE normalized_name = %s", (name,)
            )
        row = cursor.fetchone()
    return None if row is None else int(row[0])


@dataclass(frozen=True)
class Served:
    """A page answered from the tree: ``body`` is its bytes (kept in the worker's memory), or
    the open file for a large one (the root of a big index), or None for a 304 or a HEAD."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes | BinaryIO | None


def serve(
    project: str | None, content_type: str, *, method: str, if_none_match: str | None
) -> Served | None:
    """The answer to a page request from the tree alone (no query), or None when the tree has
    no current page for it.

    Trusting the link is what nginx does too: every change removes it before its request
    returns, and only a rendering still current when linked is ever linked. The file is opened
    through the link's target as read once, so the body always matches the headers.
    """
    tree = directory()
    if tree is None:
        return None
    link = _link(tree, project or ROOT)
    try:
        target = os.readlink(link)
    except OSError:
        return None
    leaf = _LEAF.match(os.path.basename(target))
    if leaf is None:
        return None
    serial, json_hex, html_hex = leaf.groups()
    hexdigest = json_hex if content_type == negotiation.JSON else html_hex
    page = pages.Page(body=b"", etag=f'"{hexdigest}"', serial=int(serial))
    if answers.etag_matches(if_none_match, answers.representation_etag(page, content_type)):
        status, headers = answers.page_head(
            page, content_type, length=0, if_none_match=if_none_match
        )
        return Served(status, headers, None)
    name = _FILES[content_type]
    key = f"{leaf.group(0)}/{name}"  # a rendering's files never change: a key for its bytes
    cached = pages.BODIES.get(key)
    if cached is not None:
        status, headers = answers.page_head(
            page, content_type, length=len(cached), if_none_match=None
        )
        return Served(status, headers, None if method == "HEAD" else cached)
    try:
        handle = open(link.parent / target / name, "rb")
    except OSError:
        return None  # superseded and collected meanwhile: the database decides
    length = os.fstat(handle.fileno()).st_size
    status, headers = answers.page_head(page, content_type, length=length, if_none_match=None)
    if method == "HEAD":
        handle.close()
        return Served(status, headers, None)
    if length > pages.BODIES.max_item_bytes:
        return Served(status, headers, handle)  # sent with sendfile, never held in memory
    with handle:
        body = handle.read()
    pages.BODIES.put(key, body)
    return Served(status, headers, body)


def published(project: str | None) -> bool:
    """Whether the front has a current link for ``project`` (None: the root; a dangling link is
    none); True when no front is configured (there is nothing to publish)."""
    tree = directory()
    return tree is None or os.path.exists(_link(tree, project or ROOT))


def publish(project: str | None) -> None:
    """Put ``project``'s pages (None: the root's) in the front's tree, if still current.

    Called by a node after it answered a page; returns at once when the tree has it already.
    Never fails the request that called it: a page that cannot be published is served by the
    nodes instead.
    """
    tree = directory()
    # Inside a transaction the serial check could read an old snapshot: never publish there.
    if tree is None or published(project) or connection.in_atomic_block:
        return
    name = project or ROOT
    global _publish_failed
    try:
        _publish(tree, name)
    except Exception:  # noqa: BLE001 - the nodes keep answering; logged for the operator
        # Once per process with the traceback (a broken tree fails every page request alike).
        log.log(
            logging.DEBUG if _publish_failed else logging.ERROR,
            "publishing the simple page of %s into %s failed; pages are answered from the "
            "database meanwhile",
            name,
            tree,
            exc_info=not _publish_failed,
        )
        _publish_failed = True


def _publish(tree: Path, name: str) -> None:
    link = _link(tree, name)
    if name == ROOT:
        html, json = pages.root_page(pages.ROOT_HTML), pages.root_page(pages.ROOT_JSON)
    else:
        found_html = pages.project_page(name, pages.SIMPLE_HTML)
        found_json = pages.project_page(name, pages.SIMPLE_JSON)
        if found_html is None or found_json is None:
            return
        html, json = found_html, found_json
    if html.serial != json.serial:
        return  # changed between the two: the next request tries again
    leaf = f"{html.serial}.{json.etag.strip(chr(34))}.{html.etag.strip(chr(34))}"
    content = tree / "pages" / name / leaf
    if not content.is_dir():
        _write(content, html.body, json.body)
    target = os.path.relpath(content, link.parent)
    with _locked(tree, name):
        if _current_serial(name) != html.serial:
            return
        link.parent.mkdir(parents=True, exist_ok=True)
        temporary = link.with_name(f".{name}.{os.getpid()}.{threading.get_ident()}")
        os.symlink(target, temporary)
        os.replace(temporary, link)
    _collect(content.parent, link)


def _write(content: Path, html: bytes, json: bytes) -> None:
    """The three files in a new directory, moved into place whole (or left to whoever was
    first: the same serial and ETags are the same bytes)."""
    content.parent.mkdir(parents=True, exist_ok=True)
    work = content.with_name(f".tmp-{content.name}-{os.getpid()}-{threading.get_ident()}")
    work.mkdir(mode=0o755)
    try:
        (work / "index.json").write_bytes(json)
        (work / "index.html").write_bytes(html)
        os.link(work / "index.html", work / "index.v1html")  # the same bytes, another type
        for member in work.iterdir():
            member.chmod(0o644)
        work.chmod(0o755)  # nginx's workers run as another user
        try:
            os.rename(work, content)
        except OSError:
            if not content.is_dir():
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def _collect(parent: Path, link: Path) -> None:
    """Remove renderings superseded for a while (and abandoned temporary directories); never
    the one ``link`` points to now."""
    try:
        keep = os.path.basename(os.readlink(link))
    except OSError:
        keep = ""
    cutoff = time.time() - _SUPERSEDED_GRACE
    for entry in parent.iterdir():
        if entry.name == keep:
            continue
        try:
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
        except FileNotFoundError:
            continue


def changed(project: str | None) -> None:
    """``project``'s pages (None: the root) change in the current transaction: unlink them in
    the front's tree once it commits. A no-op without a front."""
    tree = directory()
    if tree is None:
        return
    name = project or ROOT
    transaction.on_commit(lambda: _unlink(tree, name))


def _unlink(tree: Path, name: str) -> None:
    try:
        with _locked(tree, name):
            _link(tree, name).unlink(missing_ok=True)
    except OSError:  # the change has committed: say loudly that the front may be stale
        log.exception(
            "removing the front's page of %s failed: nginx may serve it stale until %s is "
            "removed by hand",
            name,
            _link(tree, name),
        )
