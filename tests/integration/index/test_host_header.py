"""The Host header never reaches an answer (issue 8): foreign hosts get a plain 400, absolute URLs
come from BASTION_BASE_URL, /healthz answers any Host, and the WSGI fast path agrees with Django.
"""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
from django.test import Client

from bastion.config import allowed_hosts
from bastion.hosts import host_allowed
from bastion.index.fastpath import FastPath
from bastion.projects.models import File
from tests.integration.index.test_fastpath import Recorder
from tests.integration.index.test_read_api import JSON_TYPE

pytestmark = pytest.mark.django_db

LOCAL_BASE = "http://127.0.0.1:8000"  # the test settings' (default) base URL
HTTPS_BASE = "https://pypi.example.test"
ONE_YEAR = 365 * 24 * 3600

FOREIGN_HOSTS = [
    "evil.example",
    "evil.example:8000",
    "127.0.0.1.evil.example",
    "localhost.evil.example",
    "evil.example@127.0.0.1",
    "",
]
LOOPBACK_HOSTS = ["127.0.0.1:8000", "127.0.0.1", "localhost:8000", "localhost:5000", "[::1]:8000"]


def endpoints(published) -> list[tuple[str, str]]:
    """(method, path) of every page and API endpoint, with real project, version and file."""
    wheel = File.objects.get(filename=published["wheel"].name)
    return [
        ("GET", "/"),
        ("GET", "/search/?q=x"),
        ("GET", "/project/demo-pkg/"),
        ("GET", "/simple/"),
        ("GET", "/simple/demo-pkg/"),
        ("GET", "/pypi/demo-pkg/json"),
        ("GET", "/pypi/demo-pkg/1.0/json"),
        ("GET", f"/files/{wheel.storage_key}"),
        ("GET", f"/files/{wheel.storage_key}.metadata"),
        ("POST", "/legacy/"),
        ("GET", "/account/login/"),
        ("GET", "/account/signup/"),
        ("GET", "/account/history/"),
        ("GET", "/manage/projects/"),
    ]


def call(app, path: str, *, host: str | None, server: str = "testserver", **headers: str):
    """One WSGI request; ``host=None`` sends no Host header (HTTP/1.0), as gunicorn passes it."""
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": server,
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1" if host is not None else "HTTP/1.0",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if host is not None:
        environ["HTTP_HOST"] = host
    for name, value in headers.items():
        environ["HTTP_" + name.upper()] = value
    captured = {}

    def start_response(status, response_headers, exc_info=None):
        captured["status"] = status
        captured["headers"] = response_headers

    body = b"".join(app(environ, start_response))
    return int(captured["status"].split()[0]), dict(captured["headers"]), body


def ask(client: Client, method: str, path: str, host: str, **extra: str):
    if method == "POST":
        return client.post(path, {}, HTTP_HOST=host, **extra)
    return client.get(path, HTTP_HOST=host, **extra)


@pytest.fixture
def https_index(settings):
    """The index configured as https://pypi.example.test, as settings.py derives it."""
    settings.BASTION = dataclasses.replace(settings.BASTION, base_url=HTTPS_BASE)
    settings.ALLOWED_HOSTS = allowed_hosts(HTTPS_BASE)
    settings.SECURE_HSTS_SECONDS = ONE_YEAR
    return settings


@pytest.fixture
def ssl_redirect(https_index):
    """... behind a proxy that says https in X-Forwarded-Proto (BASTION_PROXY_SSL_HEADER)."""
    https_index.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    https_index.SECURE_SSL_REDIRECT = True
    https_index.SECURE_SSL_HOST = "pypi.example.test"
    return https_index


# ---------------------------------------------------------------------------------------------
# Refused


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
def test_every_endpoint_refuses_a_foreign_host(client, published, host):
    for method, path in endpoints(published):
        response = ask(client, method, path, host)
        assert response.status_code == 400, (method, path, response.status_code)
        assert response["Content-Type"] == "text/plain; charset=utf-8"
        body = response.content.decode()
        assert body == "400 Bad Request: unknown host; this index answers as 127.0.0.1:8000\n"
        assert "evil" not in body and "evil" not in response.reason_phrase
        assert "Set-Cookie" not in response


def test_a_refused_upload_writes_nothing(client, published, alice_token):
    from tests.integration.conftest import basic

    files = File.objects.count()
    response = client.post(
        "/legacy/", {}, HTTP_HOST="evil.example", HTTP_AUTHORIZATION=basic(alice_token)
    )
    assert response.status_code == 400
    assert File.objects.count() == files


def test_refusal_does_not_depend_on_the_view_reading_the_host(client, db):
    # /simple/ never calls get_host(): the middleware does it for every request.
    assert client.get("/simple/", HTTP_HOST="evil.example").status_code == 400
    assert client.get("/no/such/page", HTTP_HOST="evil.example").status_code == 400


def test_x_forwarded_host_is_not_trusted(client, published):
    response = client.get(
        "/pypi/demo-pkg/json", HTTP_HOST="127.0.0.1:8000", HTTP_X_FORWARDED_HOST="evil.example"
    )
    assert response.status_code == 200
    assert b"evil" not in response.content


# ---------------------------------------------------------------------------------------------
# Answered, with the base URL


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_loopback_names_work_on_a_loopback_base_and_urls_use_the_base(client, published, host):
    for method, path in endpoints(published):
        response = ask(client, method, path, host)
        assert response.status_code != 400, (method, path)
        if method == "GET" and not path.startswith(("/account/history/", "/manage/")):
            assert response.status_code == 200, (method, path, response.status_code)
        if response.get("Content-Type", "").startswith(("text/html", "application/json")):
            assert b"localhost" not in response.content and b"[::1]" not in response.content
    page = json.loads(client.get("/pypi/demo-pkg/json", HTTP_HOST=host).content)
    assert page["urls"] and all(u["url"].startswith(LOCAL_BASE + "/files/") for u in page["urls"])
    assert page["info"]["project_url"] == LOCAL_BASE + "/project/demo-pkg/"
    release = json.loads(client.get("/pypi/demo-pkg/1.0/json", HTTP_HOST=host).content)
    assert all(u["url"].startswith(LOCAL_BASE + "/files/") for u in release["urls"])
    home = client.get("/", HTTP_HOST=host).content.decode()
    assert f"--index-url {LOCAL_BASE}/simple/" in home
    project = client.get("/project/demo-pkg/", HTTP_HOST=host).content.decode()
    assert f"--index-url {LOCAL_BASE}/simple/ demo-pkg" in project


def test_a_non_loopback_https_base_refuses_loopback_names_too(client, published, https_index):
    for host in LOOPBACK_HOSTS + ["testserver"]:
        response = client.get("/simple/demo-pkg/", HTTP_HOST=host)
        assert response.status_code == 400, host
        assert response.content == (
            b"400 Bad Request: unknown host; this index answers as pypi.example.test\n"
        )
    for host in ("pypi.example.test", "PyPI.Example.Test", "pypi.example.test:443"):
        response = client.get("/pypi/demo-pkg/json", HTTP_HOST=host)
        assert response.status_code == 200, host
        page = json.loads(response.content)
        assert all(u["url"].startswith(HTTPS_BASE + "/files/") for u in page["urls"])
        assert page["info"]["package_url"] == HTTPS_BASE + "/project/demo-pkg/"
        assert "Host" not in response.get("Vary", "")
    home = client.get("/", HTTP_HOST="pypi.example.test").content.decode()
    assert f"--index-url {HTTPS_BASE}/simple/" in home


def test_an_https_index_sends_hsts_on_every_answer(client, published, https_index):
    # Behind a TLS-terminating proxy without BASTION_PROXY_SSL_HEADER, Django sees plain http.
    for path in ("/", "/simple/demo-pkg/", "/pypi/demo-pkg/json", "/account/login/"):
        response = client.get(path, HTTP_HOST="pypi.example.test")
        assert response["Strict-Transport-Security"] == f"max-age={ONE_YEAR}", path


def test_a_plain_http_index_sends_no_hsts(client, published):
    assert "Strict-Transport-Security" not in client.get("/", HTTP_HOST="127.0.0.1:8000")


def test_ssl_redirect_goes_to_the_base_host_and_checks_the_host_first(client, ssl_redirect):
    response = client.get("/simple/?x=1", HTTP_HOST="pypi.example.test")
    assert response.status_code == 301
    assert response["Location"] == "https://pypi.example.test/simple/?x=1"
    assert client.get("/simple/", HTTP_HOST="evil.example").status_code == 400
    secure = client.get("/simple/", HTTP_HOST="pypi.example.test", HTTP_X_FORWARDED_PROTO="https")
    assert secure.status_code == 200


# ---------------------------------------------------------------------------------------------
# /healthz


@pytest.mark.parametrize("host", ["evil.example", "10.1.2.3:8000", "10.1.2.3", "[fd00::1]:8000"])
def test_healthz_answers_any_host(client, host):
    response = client.get("/healthz", HTTP_HOST=host)
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok", "database": "ok", "storage": "ok"}


def test_healthz_is_not_redirected_to_https(client, ssl_redirect):
    response = client.get("/healthz", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200


# ---------------------------------------------------------------------------------------------
# The decision itself, and requests without a Host header


def test_host_allowed_is_djangos_decision():
    loopback = tuple(allowed_hosts(LOCAL_BASE))
    assert host_allowed("127.0.0.1:8000", loopback)
    assert host_allowed("LOCALHOST:1234", loopback)
    assert host_allowed("[::1]:8000", loopback)
    assert host_allowed("127.0.0.1.", loopback)  # a trailing dot is the same name
    assert not host_allowed("evil.example", loopback)
    assert not host_allowed("127.0.0.1:8000@evil.example", loopback)
    assert not host_allowed("", loopback)
    public = tuple(allowed_hosts(HTTPS_BASE))
    assert host_allowed("pypi.example.test:8443", public)
    assert not host_allowed("sub.pypi.example.test", public)
    assert not host_allowed("127.0.0.1:8000", public)


@pytest.mark.django_db(transaction=True)
def test_a_request_without_host_is_judged_by_the_servers_own_name(published):
    django = Recorder()
    for app in (django, FastPath(django)):
        # HTTP/1.0 without Host: Django falls back to SERVER_NAME, which the server sets to its
        # own (listening) address, never to anything the client sent.
        assert call(app, "/simple/demo-pkg/", host=None, server="127.0.0.1")[0] == 200
        assert call(app, "/simple/demo-pkg/", host=None, server="10.0.0.5")[0] == 400


# ---------------------------------------------------------------------------------------------
# The WSGI fast path


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", ""])
def test_fast_path_does_not_answer_a_foreign_host(published, host):
    recorder = Recorder()
    fast = FastPath(recorder)
    assert call(fast, "/simple/demo-pkg/", host="127.0.0.1:8000", accept=JSON_TYPE)[0] == 200
    calls = recorder.calls  # the page is cached now: a good host is answered without Django
    assert call(fast, "/simple/demo-pkg/", host="localhost", accept=JSON_TYPE)[0] == 200
    assert recorder.calls == calls
    status, _headers, body = call(fast, "/simple/demo-pkg/", host=host, accept=JSON_TYPE)
    assert status == 400 and b"evil" not in body
    assert recorder.calls == calls + 1  # fell through to Django, which refused it


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", ""])
def test_fast_path_does_not_serve_a_file_to_a_foreign_host(published, host):
    recorder = Recorder()
    fast = FastPath(recorder)
    url = "/files/" + File.objects.get(filename=published["wheel"].name).storage_key
    assert call(fast, url, host="127.0.0.1:8000")[0] == 200
    assert recorder.calls == 0  # a good host: answered without Django
    status, _headers, body = call(fast, url, host=host)
    assert status == 400 and b"evil" not in body
    assert recorder.calls == 1  # fell through to Django, which refused it


@pytest.mark.django_db(transaction=True)
def test_fast_path_on_an_https_index_with_ssl_redirect(published, ssl_redirect):
    recorder = Recorder()
    fast = FastPath(recorder)
    secure = {"host": "pypi.example.test", "x_forwarded_proto": "https", "accept": JSON_TYPE}
    slow = call(recorder, "/simple/demo-pkg/", **secure)  # renders and caches
    assert slow[0] == 200
    quick = call(fast, "/simple/demo-pkg/", **secure)
    assert recorder.calls == 1  # answered by the fast path
    assert quick[0] == 200 and quick[2] == slow[2]
    assert quick[1]["Strict-Transport-Security"] == slow[1]["Strict-Transport-Security"]
    assert quick[1]["Strict-Transport-Security"] == f"max-age={ONE_YEAR}"
    # Plain http: Django redirects, so the fast path must not answer 200.
    status, headers, _body = call(fast, "/simple/demo-pkg/", host="pypi.example.test")
    assert (status, headers["Location"]) == (301, "https://pypi.example.test/simple/demo-pkg/")
    assert recorder.calls == 2
    for proto in ("http", "http, https"):
        plain = call(fast, "/simple/demo-pkg/", host="pypi.example.test", x_forwarded_proto=proto)
        assert plain[0] == 301
    # A foreign host, even over https, is refused by Django.
    foreign = call(fast, "/simple/demo-pkg/", **{**secure, "host": "evil.example"})
    assert foreign[0] == 400
    assert recorder.calls == 5
