"""The pre-rendered pages the nginx front serves itself (BASTION_FRONT_PAGES_DIR, index/front.py).

A node publishes a page it answered; every change unlinks it once committed, before its request
returns; a rendering that a change overtook is never linked.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import zlib
from pathlib import Path

import pytest
from django.test import Client

from bastion.actors import Actor
from bastion.index import front, pages
from bastion.index.fastpath import FastPath
from bastion.projects import services
from bastion.projects.models import Project, Release
from tests.integration.index.test_fastpath import Recorder, call
from tests.integration.index.test_read_api import JSON_TYPE, PIP_ACCEPT
from tests.integration.uploads.test_upload_endpoint import upload
from tests.unit.core.builders import make_wheel

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tree(settings, tmp_path: Path) -> Path:
    where = tmp_path / "front"
    settings.BASTION = dataclasses.replace(settings.BASTION, front_pages_dir=where)
    return where


def _linked(tree: Path, name: str) -> Path | None:
    link = tree / "simple" / name
    return link.resolve() if os.path.lexists(link) else None


def test_a_page_answered_by_a_node_is_published_with_its_serial_and_etags(
    tree: Path, published, client: Client
) -> None:
    assert _linked(tree, "demo-pkg") is None
    as_json = client.get("/simple/demo-pkg/", HTTP_ACCEPT=PIP_ACCEPT)
    content = _linked(tree, "demo-pkg")
    assert content is not None and content.parent == tree / "pages" / "demo-pkg"
    as_html = client.get("/simple/demo-pkg/")
    as_v1 = client.get("/simple/demo-pkg/", HTTP_ACCEPT="application/vnd.pypi.simple.v1+html")
    serial, json_etag, html_etag = content.name.split(".")
    assert as_json["X-PyPI-Last-Serial"] == as_html["X-PyPI-Last-Serial"] == serial
    assert as_json["ETag"] == f'"{json_etag}"'
    assert as_v1["ETag"] == f'"{html_etag}"' and as_html["ETag"] == f'"{html_etag}-h"'
    assert (content / "index.json").read_bytes() == as_json.content
    assert (content / "index.html").read_bytes() == as_html.content == as_v1.content
    assert (content / "index.v1html").read_bytes() == as_v1.content
    assert oct((content / "index.json").stat().st_mode & 0o777) == "0o644"


def test_the_fast_path_publishes_too_and_the_root_has_its_own_link(
    tree: Path, published, client: Client
) -> None:
    client.get("/simple/demo-pkg/", HTTP_ACCEPT=JSON_TYPE)  # rendered and published
    (tree / "simple" / "demo-pkg").unlink()
    recorder = Recorder()
    status, _headers, _body = call(FastPath(recorder), "/simple/demo-pkg/", accept=JSON_TYPE)
    assert (status, recorder.calls) == (200, 0)
    assert _linked(tree, "demo-pkg") is not None
    root = client.get("/simple/", HTTP_ACCEPT=JSON_TYPE)
    content = _linked(tree, front.ROOT)
    assert content is not None
    assert (content / "index.json").read_bytes() == root.content
    assert content.name.split(".")[0] == root["X-PyPI-Last-Serial"]


def test_an_upload_unlinks_the_page_before_it_returns(
    tree: Path, published, client: Client, alice_token: str, tmp_path: Path
) -> None:
    client.get("/simple/demo-pkg/")
    client.get("/simple/")
    old = _linked(tree, "demo-pkg")
    assert old is not None and _linked(tree, front.ROOT) is not None
    wheel = make_wheel(tmp_path, name="Demo_Pkg", version="3.0")
    assert upload(client, wheel, alice_token).status_code == 200
    assert _linked(tree, "demo-pkg") is None  # nginx asks a node from now on
    assert _linked(tree, front.ROOT) is not None  # no new project: the list is unchanged
    page = client.get("/simple/demo-pkg/", HTTP_ACCEPT=JSON_TYPE)
    assert "3.0" in json.loads(page.content)["versions"]
    new = _linked(tree, "demo-pkg")
    assert new is not None and new != old
    assert b"3.0" in (new / "index.json").read_bytes()
    # A new project changes the list: the root goes too.
    assert (
        upload(client, make_wheel(tmp_path, name="other", version="1"), alice_token).status_code
        == 200
    )
    assert _linked(tree, front.ROOT) is None


def test_a_rendering_overtaken_by_a_change_is_never_linked(
    tree: Path, published, client: Client, alice_token: str, tmp_path: Path, monkeypatch
) -> None:
    # A node renders the page, then (slowly) publishes it after an upload has committed and
    # unlinked: the serial check under the lock refuses the old rendering.
    before = {
        kind: pages.project_page("demo-pkg", kind)
        for kind in (pages.SIMPLE_HTML, pages.SIMPLE_JSON)
    }
    assert (
        upload(
            client, make_wheel(tmp_path, name="Demo_Pkg", version="4.0"), alice_token
        ).status_code
        == 200
    )
    monkeypatch.setattr(pages, "project_page", lambda name, kind: before[kind])  # the slow node
    front.publish("demo-pkg")
    assert _linked(tree, "demo-pkg") is None
    monkeypatch.undo()
    front.publish("demo-pkg")
    current = _linked(tree, "demo-pkg")
    assert current is not None and b"4.0" in (current / "index.json").read_bytes()


def test_yank_and_deletion_unlink_the_page(tree: Path, published, client: Client, alice) -> None:
    client.get("/simple/demo-pkg/")
    release = Release.objects.get(project__normalized_name="demo-pkg", version="1.0")
    services.yank_release(actor=Actor(user=alice), release=release, reason="broken")
    assert _linked(tree, "demo-pkg") is None
    page = client.get("/simple/demo-pkg/", HTTP_ACCEPT=JSON_TYPE)
    content = _linked(tree, "demo-pkg")
    assert content is not None and (content / "index.json").read_bytes() == page.content
    assert "broken" in [f.get("yanked") for f in json.loads(page.content)["files"]]
    client.get("/simple/")
    project = Project.objects.get(normalized_name="demo-pkg")
    services.delete_project(actor=Actor.operator(), project=project, confirm=project.name)
    assert _linked(tree, "demo-pkg") is None and _linked(tree, front.ROOT) is None
    assert client.get("/simple/demo-pkg/").status_code == 404
    assert _linked(tree, "demo-pkg") is None  # nothing to publish for a missing project


def test_no_tree_when_turned_off(settings, published, client: Client) -> None:
    settings.BASTION = dataclasses.replace(settings.BASTION, front_pages_dir=None)
    client.get("/simple/demo-pkg/")
    assert front.directory() is None and front.published("demo-pkg")
    assert front.serve("demo-pkg", "text/html", method="GET", if_none_match=None) is None


def test_superseded_renderings_are_collected_but_never_the_linked_one(
    tree: Path, published, client: Client, alice_token: str, tmp_path: Path
) -> None:
    client.get("/simple/demo-pkg/")
    first = _linked(tree, "demo-pkg")
    assert first is not None
    old = time.time() - 3600
    os.utime(first, (old, old))  # linked an hour ago: kept while it is the current one
    abandoned = first.parent / ".tmp-abandoned"
    abandoned.mkdir()
    os.utime(abandoned, (old, old))
    front._collect(first.parent, tree / "simple" / "demo-pkg")
    assert first.is_dir() and not abandoned.exists()
    wheel = make_wheel(tmp_path, name="Demo_Pkg", version="5.0")
    assert upload(client, wheel, alice_token).status_code == 200
    client.get("/simple/demo-pkg/")
    second = _linked(tree, "demo-pkg")
    assert second is not None and second != first
    assert not first.exists()  # superseded an hour ago
    assert sorted(p.name for p in second.parent.iterdir()) == [second.name]


@pytest.mark.parametrize("accept", [None, JSON_TYPE, "application/vnd.pypi.simple.v1+html"])
@pytest.mark.parametrize("path", ["/simple/demo-pkg/", "/simple/"])
def test_a_node_answers_from_the_tree_without_the_database(
    tree: Path, published, client: Client, accept, path, django_assert_num_queries
) -> None:
    from tests.integration.index.test_fastpath import COMPARED

    recorder = Recorder()
    fast = FastPath(recorder)
    headers = {"accept": accept} if accept else {}
    slow = call(recorder, path, **headers)  # Django renders, answers and publishes
    assert _linked(tree, "demo-pkg" if path != "/simple/" else front.ROOT) is not None
    with django_assert_num_queries(0):
        quick = call(fast, path, **headers)
        not_modified = call(fast, path, if_none_match=slow[1]["ETag"], **headers)
        head = call(fast, path, method="HEAD", **headers)
    assert recorder.calls == 1
    assert quick[0] == 200 and quick[2] == slow[2]
    for name in COMPARED:
        assert quick[1].get(name) == slow[1].get(name), name
    assert not_modified[0] == 304 and not_modified[2] == b""
    assert not_modified[1]["ETag"] == slow[1]["ETag"] and "Content-Type" not in not_modified[1]
    assert head[0] == 200 and head[2] == b""
    assert head[1]["Content-Length"] == str(len(slow[2]))


def test_the_tree_never_answers_with_a_page_an_upload_replaced(
    tree: Path, published, client: Client, alice_token: str, tmp_path: Path
) -> None:
    recorder = Recorder()
    fast = FastPath(recorder)
    client.get("/simple/demo-pkg/", HTTP_ACCEPT=JSON_TYPE)
    before = call(fast, "/simple/demo-pkg/", accept=JSON_TYPE)
    assert recorder.calls == 0 and "6.0" not in json.loads(before[2])["versions"]
    wheel = make_wheel(tmp_path, name="Demo_Pkg", version="6.0")
    assert upload(client, wheel, alice_token).status_code == 200
    after = call(fast, "/simple/demo-pkg/", accept=JSON_TYPE, if_none_match=before[1]["ETag"])
    assert after[0] == 200 and "6.0" in json.loads(after[2])["versions"]
    assert int(after[1]["X-PyPI-Last-Serial"]) > int(before[1]["X-PyPI-Last-Serial"])
    # the fast path rendered it from the database, published it, and serves it from the tree
    assert _linked(tree, "demo-pkg") is not None
    assert call(fast, "/simple/demo-pkg/", accept=JSON_TYPE)[2] == after[2]


def test_a_collected_rendering_falls_back_to_the_database(
    tree: Path, published, client: Client
) -> None:
    import shutil

    client.get("/simple/demo-pkg/")
    content = _linked(tree, "demo-pkg")
    assert content is not None
    shutil.rmtree(content)  # the link dangles
    assert front.serve("demo-pkg", "text/html", method="GET", if_none_match=None) is None
    recorder = Recorder()
    status, _headers, body = call(FastPath(recorder), "/simple/demo-pkg/")
    assert status == 200 and b"demo_pkg-1.0.tar.gz" in body
    assert _linked(tree, "demo-pkg") is not None and _linked(tree, "demo-pkg").is_dir()


def test_a_large_page_is_sent_from_its_file_and_never_kept_in_memory(
    tree: Path, published, client: Client, monkeypatch
) -> None:
    monkeypatch.setattr(pages.BODIES, "max_item_bytes", 10)  # every page counts as large
    pages.BODIES.clear()
    slow = client.get("/simple/", HTTP_ACCEPT=JSON_TYPE)
    pages.BODIES.clear()
    served = front.serve(None, JSON_TYPE, method="GET", if_none_match=None)
    assert served is not None and not isinstance(served.body, bytes)
    with served.body:
        assert served.body.read() == slow.content
    recorder = Recorder()
    status, headers, body = call(FastPath(recorder), "/simple/", accept=JSON_TYPE)
    assert (status, body, recorder.calls) == (200, slow.content, 0)
    assert headers["Content-Length"] == str(len(slow.content))
    assert len(pages.BODIES._bodies) == 0


def test_a_publisher_inside_the_lock_delays_the_unlink_of_a_committed_change(
    tree: Path, published, client: Client, alice_token: str, tmp_path: Path
) -> None:
    # The window on purpose: a publisher has passed its serial check under the lock and is about
    # to link the page; an upload commits meanwhile. Its unlink must wait for the lock, so the
    # link made just before is removed before the upload's request returns.
    import threading

    client.get("/simple/demo-pkg/")
    old = _linked(tree, "demo-pkg")
    assert old is not None
    link = tree / "simple" / "demo-pkg"
    link.unlink()
    wheel = make_wheel(tmp_path, name="Demo_Pkg", version="7.0")
    done = threading.Event()
    statuses: list[int] = []

    def upload_in_another_thread() -> None:
        from django.db import connection

        try:
            statuses.append(upload(Client(), wheel, alice_token).status_code)
        finally:
            connection.close()
            done.set()

    with front._locked(tree, "demo-pkg"):
        uploader = threading.Thread(target=upload_in_another_thread)
        uploader.start()
        assert not done.wait(2.0)  # committed, and now waiting for the lock to unlink
        os.symlink(os.path.relpath(old, link.parent), link)  # the publisher's link
    uploader.join(30)
    assert statuses == [200]
    assert _linked(tree, "demo-pkg") is None  # removed before the upload returned


def test_a_tree_that_cannot_be_written_leaves_pages_to_the_database(
    settings, published, client: Client, tmp_path: Path, caplog, monkeypatch
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the tree should be")
    settings.BASTION = dataclasses.replace(settings.BASTION, front_pages_dir=blocked)
    monkeypatch.setattr(front, "_publish_failed", False)
    for _ in range(3):
        page = client.get("/simple/demo-pkg/", HTTP_ACCEPT=JSON_TYPE)
        assert page.status_code == 200 and b"demo_pkg-1.0.tar.gz" in page.content
    errors = [r for r in caplog.records if r.levelname == "ERROR" and "publishing" in r.message]
    assert len(errors) == 1  # once per process, not once per request


def test_names_share_a_fixed_set_of_lock_files_made_on_first_use(tmp_path: Path) -> None:
    # A lock file per name cost a file creation in every new project's upload; the names now
    # share LOCK_FILES files, by a hash that every process and node computes alike.
    tree = tmp_path / "front"
    paths = {front.lock_path(tree, f"project-{i}") for i in range(2000)}
    assert len(paths) == front.LOCK_FILES
    assert all(path.parent == tree / "locks" for path in paths)
    assert front.lock_path(tree, "demo-pkg") == front.lock_path(tree, "demo-pkg")
    assert front.lock_path(tree, "demo-pkg").name == f"{zlib.crc32(b'demo-pkg') % 64:02d}.lock"
    with front._locked(tree, front.ROOT):  # the directory is made by the first lock taken
        assert front.lock_path(tree, front.ROOT).is_file()


def test_two_names_sharing_a_lock_file_exclude_each_other_without_deadlock(
    tmp_path: Path,
) -> None:
    import threading

    tree = tmp_path / "front"
    first = "project-0"
    second = next(
        name
        for name in (f"project-{i}" for i in range(1, 10_000))
        if front.lock_path(tree, name) == front.lock_path(tree, first)
    )
    entered = threading.Event()

    def take_second() -> None:
        with front._locked(tree, second):
            entered.set()

    with front._locked(tree, first):
        other = threading.Thread(target=take_second)
        other.start()
        assert not entered.wait(0.5)  # the shared file is held: the other name waits
    other.join(10)
    assert entered.is_set()  # and takes it once released
