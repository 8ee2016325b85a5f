"""Simple pages answered from the raw request (bastion.index.wire): the same status, fields and
body as FastPath's WSGI answer with gunicorn's own fields, and None (gunicorn and Django
decide) for anything outside the strict subset it takes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from django.test import Client

from bastion.index import fastpath, files, front
from bastion.index.fastpath import FastPath
from bastion.index.wire import MAX_HEAD, Wire
from tests.integration.index.test_fastpath import Recorder, _file_url, call
from tests.integration.index.test_read_api import JSON_TYPE, PIP_ACCEPT, published  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

GET = b"GET /simple/demo-pkg/ HTTP/1.1\r\nHost: testserver\r\n"
GET_10 = GET.replace(b"HTTP/1.1", b"HTTP/1.0")


@pytest.fixture
def tree(settings, tmp_path: Path) -> Path:
    where = tmp_path / "front"
    settings.BASTION = dataclasses.replace(settings.BASTION, front_pages_dir=where)
    return where


@pytest.fixture
def wire(tree: Path, published, client: Client) -> Wire:  # noqa: F811
    """demo-pkg and the root, both published in the tree."""
    for path in ("/simple/demo-pkg/", "/simple/"):
        assert client.get(path).status_code == 200
    assert front.published("demo-pkg") and front.published(None)
    return Wire(FastPath(Recorder()))


def _parse(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    assert head.endswith(b"\r\n\r\n")
    status, *lines = head[:-4].decode("latin-1").split("\r\n")
    return status, [tuple(line.split(": ", 1)) for line in lines]  # type: ignore[misc]


@pytest.mark.parametrize(
    "path, accept, method",
    [
        ("/simple/demo-pkg/", None, "GET"),
        ("/simple/demo-pkg/", PIP_ACCEPT, "GET"),
        ("/simple/demo-pkg/", JSON_TYPE, "GET"),
        ("/simple/demo-pkg/", "application/vnd.pypi.simple.v1+html", "GET"),
        ("/simple/", JSON_TYPE, "GET"),
        ("/simple/", None, "HEAD"),
    ],
)
def test_the_answer_is_fast_paths_with_gunicorns_fields(wire: Wire, path, accept, method) -> None:
    recorder = Recorder()
    extra = {"accept": accept} if accept else {}
    status, headers, body = call(FastPath(recorder), path, method=method, **extra)
    assert recorder.calls == 0 and status == 200
    raw = f"{method} {path} HTTP/1.1\r\nHost: testserver\r\n"
    if accept:
        raw += f"Accept: {accept}\r\n"
    reply = wire.reply((raw + "\r\n").encode(), may_keep_alive=True)

    assert reply is not None
    line, fields = _parse(reply.head)
    assert line == "HTTP/1.1 200 OK"
    assert [name for name, _ in fields[:3]] == ["Server", "Date", "Connection"]
    assert fields[0][1] == "gunicorn" and fields[2][1] == "keep-alive"
    assert fields[3:] == list(headers.items())
    assert reply.keep_alive
    if method == "HEAD":
        assert reply.body is None and reply.length == 0
        assert dict(fields)["Content-Length"] == str(len(wire_body(wire, path, accept)))
    else:
        assert reply.body == body and reply.length == len(body)


def wire_body(wire: Wire, path: str, accept: str | None) -> bytes:
    raw = f"GET {path} HTTP/1.1\r\nHost: testserver\r\n"
    raw += f"Accept: {accept}\r\n\r\n" if accept else "\r\n"
    reply = wire.reply(raw.encode(), may_keep_alive=True)
    assert reply is not None and isinstance(reply.body, bytes)
    return reply.body


def test_a_current_etag_is_a_304_without_a_body(wire: Wire) -> None:
    first = wire.reply(GET + b"\r\n", may_keep_alive=True)
    assert first is not None
    etag = dict(_parse(first.head)[1])["ETag"]
    reply = wire.reply(GET + f"If-None-Match: {etag}\r\n\r\n".encode(), may_keep_alive=True)
    assert reply is not None and reply.body is None
    line, fields = _parse(reply.head)
    assert line == "HTTP/1.1 304 Not Modified"
    assert dict(fields)["ETag"] == etag and "Content-Length" not in dict(fields)
    stale = wire.reply(GET + b'If-None-Match: "0000"\r\n\r\n', may_keep_alive=True)
    assert stale is not None and _parse(stale.head)[0] == "HTTP/1.1 200 OK"


@pytest.mark.parametrize(
    "raw, keep_alive",
    [
        (GET + b"\r\n", True),
        (GET + b"Connection: close\r\n\r\n", False),
        (GET + b"Connection:  Keep-Alive \r\n\r\n", True),
        (GET_10 + b"\r\n", False),
        (
            GET_10 + b"Connection: keep-alive\r\n\r\n",
            True,
        ),
        (
            GET_10 + b"Connection: x, keep-alive\r\n\r\n",
            False,
        ),
    ],
)
def test_keep_alive_follows_gunicorns_rule(wire: Wire, raw: bytes, keep_alive: bool) -> None:
    reply = wire.reply(raw, may_keep_alive=True)
    assert reply is not None and reply.keep_alive is keep_alive
    line, fields = _parse(reply.head)
    assert line.startswith(raw.split(b"\r\n")[0][-8:].decode())  # the request's own version
    assert dict(fields)["Connection"] == ("keep-alive" if keep_alive else "close")
    # a stopping or full worker closes whatever the client asked
    closing = wire.reply(raw, may_keep_alive=False)
    assert closing is not None and not closing.keep_alive
    assert dict(_parse(closing.head)[1])["Connection"] == "close"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(GET, id="head not complete"),
        pytest.param(GET + b"\r\n" + GET + b"\r\n", id="pipelined request behind it"),
        pytest.param(GET + b"\r\nbody", id="bytes behind the head"),
        pytest.param(GET + b"Content-Length: 0\r\n\r\n", id="content-length"),
        pytest.param(GET + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", id="chunked"),
        pytest.param(GET + b"transfer-encoding: chunked\r\n\r\n", id="chunked, lower case"),
        pytest.param(GET + b"Expect: 100-continue\r\n\r\n", id="expect"),
        pytest.param(GET + b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n", id="h2c"),
        pytest.param(GET + b"X-A: 1\r\n folded\r\n\r\n", id="obs-fold"),
        pytest.param(GET + b"X-A: 1\r\nX-A: 2\r\n\r\n", id="a field twice"),
        pytest.param(GET + b"Host: other\r\n\r\n", id="host twice"),
        pytest.param(GET + b"X_A: 1\r\n\r\n", id="underscore in a name"),
        pytest.param(GET + b"X-A : 1\r\n\r\n", id="space before the colon"),
        pytest.param(GET + b"X-A: a\x00b\r\n\r\n", id="control character"),
        pytest.param(GET + b"X-A: caf\xc3\xa9\r\n\r\n", id="non-ascii value"),
        pytest.param(GET.replace(b"\r\n", b"\n") + b"\n", id="bare LF"),
        pytest.param(b"GET /simple/demo-pkg/ HTTP/1.1\r\n\r\n", id="no host"),
        pytest.param(
            b"GET /simple/demo-pkg/ HTTP/1.1\r\nHost: evil.example\r\n\r\n", id="other host"
        ),
        pytest.param(GET.replace(b"GET", b"POST") + b"\r\n", id="post"),
        pytest.param(GET.replace(b"GET ", b"GET  ") + b"\r\n", id="two spaces"),
        pytest.param(GET.replace(b"HTTP/1.1", b"HTTP/2.0") + b"\r\n", id="version 2"),
        pytest.param(GET.replace(b"demo-pkg/", b"demo-pkg/?x=1") + b"\r\n", id="query"),
        pytest.param(GET.replace(b"demo-pkg/", b"Demo_Pkg/") + b"\r\n", id="not normalized"),
        pytest.param(GET.replace(b"demo-pkg/", b"demo-pkg") + b"\r\n", id="no slash"),
        pytest.param(GET.replace(b"/simple/", b"//simple/") + b"\r\n", id="double slash"),
        pytest.param(GET.replace(b"demo-pkg", b"missing") + b"\r\n", id="not in the tree"),
        pytest.param(GET + b"Accept: image/png\r\n\r\n", id="nothing acceptable"),
        pytest.param(GET + b"X-Long: " + b"a" * MAX_HEAD + b"\r\n\r\n", id="too long"),
    ],
)
def test_anything_else_is_left_to_gunicorn(wire: Wire, raw: bytes) -> None:
    assert wire.reply(raw, may_keep_alive=True) is None


def test_a_page_is_taken_only_while_it_is_in_the_tree(
    wire: Wire, tree: Path, client: Client
) -> None:
    assert wire.reply(GET + b"\r\n", may_keep_alive=True) is not None
    (tree / "simple" / "demo-pkg").unlink()  # what a change does before its request returns
    assert wire.reply(GET + b"\r\n", may_keep_alive=True) is None


def test_hsts_is_added_as_fast_path_adds_it(wire: Wire, settings) -> None:
    settings.BASTION = dataclasses.replace(settings.BASTION, base_url="https://index.test")
    settings.SECURE_HSTS_SECONDS = 3600
    secure = Wire(FastPath(Recorder()))
    reply = secure.reply(GET + b"\r\n", may_keep_alive=True)
    assert reply is not None
    assert dict(_parse(reply.head)[1])["Strict-Transport-Security"] == "max-age=3600"


# ---------------------------------------------------------------------------------------------
# Downloads: whole files from the local store, with the embedded database


def _download(url: str, method: str = "GET", extra: bytes = b"") -> bytes:
    return f"{method} {url} HTTP/1.1\r\nHost: testserver\r\n".encode() + extra + b"\r\n"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("suffix", ["", ".metadata"])
def test_a_download_is_fast_paths_answer_with_gunicorns_fields(
    wire: Wire,
    published,  # noqa: F811
    method,
    suffix,
) -> None:
    url = _file_url(published, suffix=suffix)
    recorder = Recorder()
    status, headers, body = call(FastPath(recorder), url, method=method)
    assert recorder.calls == 0 and status == 200
    reply = wire.reply(_download(url, method), may_keep_alive=True)

    assert reply is not None
    line, fields = _parse(reply.head)
    assert line == "HTTP/1.1 200 OK"
    assert [name for name, _ in fields[:3]] == ["Server", "Date", "Connection"]
    assert fields[3:] == list(headers.items())
    if method == "HEAD":
        assert reply.body is None and reply.length == 0
    else:
        assert reply.body == body and reply.length == len(body) > 0
        if not suffix:
            assert body == published["wheel"].read_bytes()


def test_a_download_revalidation_is_a_304_without_a_body(wire: Wire, published) -> None:  # noqa: F811
    url = _file_url(published)
    first = wire.reply(_download(url), may_keep_alive=True)
    assert first is not None
    etag = dict(_parse(first.head)[1])["ETag"]
    revalidation = _download(url, extra=f"If-None-Match: {etag}\r\n".encode())
    reply = wire.reply(revalidation, may_keep_alive=True)
    assert reply is not None and reply.body is None and reply.length == 0
    line, fields = _parse(reply.head)
    assert line == "HTTP/1.1 304 Not Modified"
    assert dict(fields)["ETag"] == etag and "Content-Length" not in dict(fields)


def test_a_larger_download_is_its_open_file(wire: Wire, published, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setattr(fastpath, "SMALL_FILE", 10)  # every file counts as large
    reply = wire.reply(_download(_file_url(published)), may_keep_alive=True)
    assert reply is not None and not isinstance(reply.body, bytes) and reply.body is not None
    with reply.body as handle:  # sent by a pool thread (sendfile)
        assert handle.read() == published["wheel"].read_bytes()
    assert reply.length == len(published["wheel"].read_bytes())


@pytest.mark.parametrize(
    "case",
    [
        "range",
        "percent-escaped name",
        "query",
        "no such file",
        "an sdist's metadata",
        "consistent-snapshot form",
        "missing from storage",
        "quarantined project",
        "database error",
        "not the embedded database",
        "foreign host",
    ],
)
def test_any_other_download_is_left_to_gunicorn(
    wire: Wire,
    published,  # noqa: F811
    monkeypatch,
    case,
) -> None:
    from django.db import OperationalError

    from bastion.projects.models import File, Project, ProjectStatus
    from bastion.storage import blob_store

    url = _file_url(published)
    extra = b""
    if case == "range":
        extra = b"Range: bytes=0-9\r\n"
    elif case == "percent-escaped name":
        directory, name = url.rsplit("/", 1)
        url = f"{directory}/%{ord(name[0]):02X}{name[1:]}"
    elif case == "query":
        url += "?x=1"
    elif case == "no such file":
        url += "xyz"
    elif case == "an sdist's metadata":
        url = _file_url(published, "sdist", ".metadata")
    elif case == "consistent-snapshot form":
        file = File.objects.get(filename=published["wheel"].name)
        directory, name = file.storage_key.rsplit("/", 1)
        url = f"/files/{directory}/{file.blake2_256}.{name}"
    elif case == "missing from storage":
        blob_store().delete(url.removeprefix("/files/"))
    elif case == "quarantined project":
        Project.objects.filter(normalized_name="demo-pkg").update(status=ProjectStatus.QUARANTINED)
    elif case == "database error":
        # A database that fails a query mid-request cannot be arranged in process: injected.
        def plan(*args, **kwargs):
            raise OperationalError("database is locked")

        monkeypatch.setattr(files, "plan", plan)
    elif case == "not the embedded database":  # PostgreSQL, or object storage: a pool thread
        wire.local_files = False
    raw = _download(url, extra=extra)
    if case == "foreign host":  # Django answers 400; the name is never echoed
        raw = raw.replace(b"Host: testserver", b"Host: evil.example")
    assert wire.reply(raw, may_keep_alive=True) is None
