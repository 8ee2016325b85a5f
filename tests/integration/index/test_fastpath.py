"""The WSGI fast path answers cache hits exactly as Django would, and passes everything else on."""

from __future__ import annotations

import io

import pytest
from django.core.wsgi import get_wsgi_application

from bastion.index.fastpath import FastPath
from tests.integration.index.test_read_api import JSON_TYPE, PIP_ACCEPT

pytestmark = pytest.mark.django_db(transaction=True)


class Recorder:
    """Wraps Django so a test can see whether a request reached it."""

    def __init__(self) -> None:
        self.django = get_wsgi_application()
        self.calls = 0

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.django(environ, start_response)


def call(app, path: str, *, method: str = "GET", query: str = "", **headers: str):
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in headers.items():
        environ["HTTP_" + name.upper()] = value
    captured = {}

    def start_response(status, response_headers, exc_info=None):
        captured["status"] = status
        captured["headers"] = response_headers

    body = b"".join(app(environ, start_response))
    return int(captured["status"].split()[0]), dict(captured["headers"]), body


COMPARED = (
    "Content-Type",
    "Content-Length",
    "ETag",
    "Vary",
    "Cache-Control",
    "X-PyPI-Last-Serial",
    "Access-Control-Allow-Origin",
    "X-Content-Type-Options",
    "X-Accel-Expires",
)


@pytest.mark.parametrize(
    ("accept", "method"),
    [
        (PIP_ACCEPT, "GET"),
        ("text/html", "GET"),
        (None, "GET"),
        (JSON_TYPE, "HEAD"),
        ("application/vnd.pypi.simple.v1+html", "GET"),
    ],
)
@pytest.mark.parametrize("path", ["/simple/demo-pkg/", "/simple/"])
def test_hit_is_identical_to_django(published, accept, method, path):
    recorder = Recorder()
    fast = FastPath(recorder)
    headers = {"accept": accept} if accept else {}
    slow = call(recorder, path, method=method, **headers)  # renders and caches
    assert recorder.calls == 1
    quick = call(fast, path, method=method, **headers)
    assert recorder.calls == 1  # answered without Django
    assert quick[0] == slow[0] == 200
    assert quick[2] == slow[2]
    for name in COMPARED:
        assert quick[1].get(name) == slow[1].get(name), name


@pytest.mark.parametrize("path", ["/simple/demo-pkg/", "/simple/"])
def test_revalidation_is_a_304_without_django(published, path):
    recorder = Recorder()
    fast = FastPath(recorder)
    _status, headers, _body = call(recorder, path, accept=JSON_TYPE)
    status, quick_headers, body = call(fast, path, accept=JSON_TYPE, if_none_match=headers["ETag"])
    assert (status, body, recorder.calls) == (304, b"", 1)
    assert quick_headers["ETag"] == headers["ETag"]
    assert quick_headers["X-Accel-Expires"] == "@1"  # the nginx front keeps asking
    status, _h, body = call(fast, path, accept=JSON_TYPE, if_none_match='"x"')
    assert status == 200 and body and recorder.calls == 1


def test_the_root_is_never_served_stale_after_a_new_project(
    published, alice_token, tmp_path, client
):
    from tests.integration.uploads.test_upload_endpoint import upload
    from tests.unit.core.builders import make_wheel

    recorder = Recorder()
    fast = FastPath(recorder)
    _s, first_headers, first = call(recorder, "/simple/", accept=JSON_TYPE)
    assert call(fast, "/simple/", accept=JSON_TYPE)[2] == first and recorder.calls == 1
    wheel = make_wheel(tmp_path, name="brand-new", version="1.0")
    assert upload(client, wheel, alice_token).status_code == 200
    status, headers, body = call(
        fast, "/simple/", accept=JSON_TYPE, if_none_match=first_headers["ETag"]
    )
    assert status == 200 and b"brand-new" in body and headers["ETag"] != first_headers["ETag"]


@pytest.mark.parametrize(
    ("path", "query", "headers", "status"),
    [
        ("/simple/demo-pkg/", "", {}, 200),  # a miss: not rendered yet
        ("/simple/no-such-project/", "", {}, 404),
        ("/simple/Demo_Pkg/", "", {}, 301),
        ("/simple/demo-pkg/", "format=text/html", {}, 200),
        ("/simple/demo-pkg/", "", {"accept": "image/png"}, 406),
        ("/simple/", "", {}, 200),
    ],
)
def test_everything_else_falls_through(published, path, query, headers, status):
    recorder = Recorder()
    fast = FastPath(recorder)
    result = call(fast, path, query=query, **headers)
    assert result[0] == status
    assert recorder.calls == 1


def test_post_falls_through(published):
    recorder = Recorder()
    fast = FastPath(recorder)
    call(recorder, "/simple/demo-pkg/")
    assert call(fast, "/simple/demo-pkg/", method="POST")[0] == 405
    assert recorder.calls == 2


# ------------------------------------------------------------------------------ files

FILE_HEADERS = (
    "Content-Type",
    "Content-Length",
    "ETag",
    "Last-Modified",
    "Cache-Control",
    "Accept-Ranges",
    "Access-Control-Allow-Origin",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Content-Security-Policy",
    "Content-Disposition",
    "Content-Range",
)


def _file_url(published, kind: str = "wheel", suffix: str = "") -> str:
    from bastion.projects.models import File

    return "/files/" + File.objects.get(filename=published[kind].name).storage_key + suffix


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("suffix", ["", ".metadata"])
def test_a_download_is_identical_to_django(published, method, suffix):
    recorder = Recorder()
    fast = FastPath(recorder)
    url = _file_url(published, suffix=suffix)
    slow = call(recorder, url, method=method)
    quick = call(fast, url, method=method)
    assert recorder.calls == 1  # the second answered without Django
    assert quick[0] == slow[0] == 200
    assert quick[2] == slow[2]
    if method == "GET":
        blob = published["wheel"].read_bytes()
        assert quick[2] == blob if not suffix else quick[2].startswith(b"Metadata-Version")
        assert quick[1]["Content-Length"] == str(len(quick[2]))
    else:
        assert quick[2] == b"" and int(quick[1]["Content-Length"]) > 0
    for name in FILE_HEADERS:
        assert quick[1].get(name) == slow[1].get(name), name


def test_a_download_revalidation_is_a_304_without_django(published):
    recorder = Recorder()
    fast = FastPath(recorder)
    url = _file_url(published)
    fresh = call(recorder, url)[1]
    slow = call(recorder, url, if_none_match=fresh["ETag"])
    quick = call(fast, url, if_none_match=fresh["ETag"])
    assert (quick[0], quick[2], recorder.calls) == (304, b"", 2)
    assert slow[0] == 304 and "Content-Type" not in quick[1] and "Content-Type" not in slow[1]
    for name in ("ETag", "Cache-Control", "Last-Modified"):
        assert quick[1][name] == slow[1][name] == fresh[name]
    assert call(fast, url, if_none_match='"other"')[0] == 200 and recorder.calls == 2


def test_a_quarantined_project_file_is_not_served_by_either(published):
    from bastion.projects.models import Project, ProjectStatus

    recorder = Recorder()
    fast = FastPath(recorder)
    url = _file_url(published)
    assert call(fast, url)[0] == 200 and recorder.calls == 0
    Project.objects.filter(normalized_name="demo-pkg").update(status=ProjectStatus.QUARANTINED)
    status, _headers, body = call(fast, url)
    assert (status, recorder.calls) == (404, 1)  # Django says why
    assert b"no such file" in body


@pytest.mark.parametrize(
    ("suffix", "query", "headers", "status"),
    [
        ("", "", {"range": "bytes=0-9"}, 206),
        ("", "x=1", {}, 200),
        ("xyz", "", {}, 404),  # no such file
        (".metadata", "", {}, 404),  # an sdist has no metadata file
    ],
)
def test_other_downloads_fall_through(published, suffix, query, headers, status):
    recorder = Recorder()
    fast = FastPath(recorder)
    url = _file_url(published, "sdist" if suffix == ".metadata" else "wheel", suffix)
    assert call(fast, url, query=query, **headers)[0] == status
    assert recorder.calls == 1


def test_the_consistent_snapshot_form_is_left_to_its_view(published):
    from bastion.projects.models import File

    recorder = Recorder()
    fast = FastPath(recorder)
    file = File.objects.get(filename=published["wheel"].name)
    directory, name = file.storage_key.rsplit("/", 1)
    status, _headers, body = call(fast, f"/files/{directory}/{file.blake2_256}.{name}")
    assert (status, recorder.calls) == (200, 1)
    assert body == published["wheel"].read_bytes()


def test_a_file_missing_from_storage_is_left_to_django(published, settings):
    from bastion.storage import blob_store

    recorder = Recorder()
    fast = FastPath(recorder)
    url = _file_url(published)
    blob_store().delete(url.removeprefix("/files/"))
    status, _headers, body = call(fast, url)
    assert (status, recorder.calls) == (404, 1)
    assert b"missing from storage" in body


def test_a_larger_download_is_streamed_from_its_file(published, monkeypatch):
    from bastion.index import fastpath

    monkeypatch.setattr(fastpath, "SMALL_FILE", 10)  # every file counts as large
    recorder = Recorder()
    status, headers, body = call(FastPath(recorder), _file_url(published))
    assert (status, recorder.calls) == (200, 0)
    assert body == published["wheel"].read_bytes()
    assert headers["Content-Length"] == str(len(body))
