"""The upload endpoint's own middleware chain (``settings.UPLOAD_MIDDLEWARE``, ``bastion.wsgi``):
the same answers, headers and checks as through the whole chain, without the pages' middleware.

The two Django handlers are called as WSGI applications, as gunicorn calls them.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from bastion.projects.models import File
from bastion.uploads.chain import UPLOAD_PATHS, UploadsApart, handler_with
from tests.integration.conftest import basic
from tests.integration.uploads.test_upload_endpoint import form_for
from tests.unit.core.builders import make_sdist, make_wheel

pytestmark = pytest.mark.django_db

# The middleware that only people's pages need; everything else stays in the upload chain.
PAGES_ONLY = {
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "bastion.accounts.middleware.RequireSecondFactorMiddleware",
}


def call(app, method: str, path: str, *, body: bytes = b"", host: str = "testserver", **meta):
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "192.0.2.10",
        "HTTP_HOST": host,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
        **meta,
    }
    answer: dict[str, object] = {}

    def start_response(status, headers, exc_info=None):
        answer["status"] = status
        answer["headers"] = headers

    chunks = app(environ, start_response)
    try:
        answer["body"] = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    return answer


def post_file(app, path: Path, token: str, **meta):
    form = form_for(path)
    return call(
        app,
        "POST",
        "/legacy/",
        body=encode_multipart(BOUNDARY, form),
        CONTENT_TYPE=MULTIPART_CONTENT,
        HTTP_AUTHORIZATION=basic(token),
        **meta,
    )


def header_names_and_values(answer) -> list[tuple[str, str]]:
    return sorted((name.lower(), value) for name, value in answer["headers"])


@pytest.fixture
def chains():
    return WSGIHandler(), handler_with(settings.UPLOAD_MIDDLEWARE)


def test_the_upload_chain_is_the_whole_chain_without_the_pages_middleware():
    assert settings.UPLOAD_MIDDLEWARE == [m for m in settings.MIDDLEWARE if m not in PAGES_ONLY]
    # Made once per handler: the whole chain is left as it was.
    handler_with(settings.UPLOAD_MIDDLEWARE)
    assert "django.contrib.sessions.middleware.SessionMiddleware" in settings.MIDDLEWARE


def test_an_upload_gets_the_same_answer_through_either_chain(chains, alice, alice_token, tmp_path):
    whole, uploads = chains
    through_uploads = post_file(
        uploads, make_wheel(tmp_path, name="demo", version="1.0"), alice_token
    )
    through_whole = post_file(whole, make_sdist(tmp_path, name="demo", version="1.0"), alice_token)
    assert through_uploads["status"] == through_whole["status"] == "200 OK"
    assert header_names_and_values(through_uploads) == header_names_and_values(through_whole)
    names = {name for name, _ in header_names_and_values(through_uploads)}
    assert {"content-security-policy", "x-frame-options", "x-content-type-options"} <= names
    assert "set-cookie" not in names
    assert File.objects.count() == 2


@pytest.mark.parametrize(
    ("method", "meta", "status"),
    [
        ("GET", {}, "405"),
        ("POST", {"HTTP_AUTHORIZATION": basic("pypi-not-a-token")}, "403"),
        ("POST", {}, "401"),
    ],
)
def test_refusals_are_the_same_through_either_chain(chains, db, method, meta, status):
    whole, uploads = chains
    answers = [call(app, method, "/legacy/", **meta) for app in (whole, uploads)]
    assert [a["status"].split()[0] for a in answers] == [status, status]
    assert answers[0]["status"] == answers[1]["status"]  # the reason phrase too
    assert answers[0]["body"] == answers[1]["body"]
    assert header_names_and_values(answers[0]) == header_names_and_values(answers[1])


def test_a_foreign_host_is_refused_before_the_upload_is_read(chains, alice, alice_token, tmp_path):
    _whole, uploads = chains
    answer = post_file(uploads, make_wheel(tmp_path), alice_token, HTTP_HOST="evil.example")
    assert answer["status"].startswith("400")
    assert File.objects.count() == 0


def test_only_the_upload_endpoint_takes_the_upload_chain():
    def named(label: bytes):
        def app(environ, start_response):
            start_response("200 OK", [])
            return [label]

        return app

    apart = UploadsApart(named(b"pages"), named(b"uploads"))  # type: ignore[arg-type]
    for path in sorted(UPLOAD_PATHS):
        assert call(apart, "POST", path)["body"] == b"uploads"
    for path in ("/legacy/x", "/legacyx", "/simple/", "/account/login/", "/"):
        assert call(apart, "POST", path)["body"] == b"pages"
