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
from django.test.client import BOUNDARY, MULTIPART_CONTENT, FakePayload, encode_multipart
from django.urls import resolve

from bastion.audit.models import Event
from bastion.projects.models import File
from bastion.uploads.chain import UPLOAD_PATHS, UploadsApart, handler_with
from bastion.uploads.views import legacy_upload
from tests.integration.conftest import basic, spooled_files, stored_blobs
from tests.integration.uploads.test_authenticate_first import forge
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


def call(app, method: str, path: str, *, body: bytes = b"", **meta):
    """The answer of ``app`` to one request; ``answer["input"]`` tells whether the body was
    read (``read_started``)."""
    payload = FakePayload(body)
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "192.0.2.10",
        "HTTP_HOST": "testserver",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": payload,
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
        **meta,
    }
    answer: dict[str, object] = {"input": payload}

    def start_response(status, headers, exc_info=None):
        answer["status"] = status
        answer["headers"] = headers

    chunks = app(environ, start_response)
    try:
        answer["body"] = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    return answer


def post_file(app, path: Path, token: str | None, **meta):
    """``path`` uploaded as twine does; with ``token`` None, no Authorization header."""
    if token is not None:
        meta.setdefault("HTTP_AUTHORIZATION", basic(token))
    body = encode_multipart(BOUNDARY, form_for(path))
    return call(app, "POST", "/legacy/", body=body, CONTENT_TYPE=MULTIPART_CONTENT, **meta)


def header_names_and_values(answer) -> list[tuple[str, str]]:
    return sorted((name.lower(), value) for name, value in answer["headers"])


@pytest.fixture
def chains():
    return WSGIHandler(), handler_with(settings.UPLOAD_MIDDLEWARE)


def test_the_upload_chain_is_the_whole_chain_without_the_pages_middleware():
    assert settings.UPLOAD_MIDDLEWARE == [m for m in settings.MIDDLEWARE if m not in PAGES_ONLY]
    whole = list(settings.MIDDLEWARE)
    handler_with(settings.UPLOAD_MIDDLEWARE)
    assert settings.MIDDLEWARE == whole  # making the handler leaves the whole chain as it was


def test_the_upload_paths_are_what_the_urlconf_routes_to_the_upload_view():
    for path in UPLOAD_PATHS:
        assert resolve(path).func is legacy_upload


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


def test_a_get_is_answered_the_same_through_either_chain(chains, db):
    answers = [call(app, "GET", "/legacy/") for app in chains]
    assert answers[0]["status"] == answers[1]["status"] == "405 Method Not Allowed"
    assert answers[0]["body"] == answers[1]["body"]
    assert header_names_and_values(answers[0]) == header_names_and_values(answers[1])


@pytest.mark.parametrize(
    ("credential", "status"),
    [("forged", "403"), ("not-a-token", "403"), (None, "401")],
)
def test_a_refused_credential_is_refused_the_same_before_the_body_is_read(
    chains, alice, alice_token, tmp_path, credential, status
):
    """A forged token (alice's, its signature altered) is anonymous in either chain: refused
    before the body is read, nothing recorded for alice."""
    wheel = make_wheel(tmp_path)
    events = Event.objects.count()
    token = forge(alice_token) if credential == "forged" else credential
    meta = {} if token is None else {"HTTP_AUTHORIZATION": basic(token)}
    answers = [post_file(app, wheel, None, **meta) for app in chains]
    assert [a["status"].split()[0] for a in answers] == [status, status]
    assert answers[0]["status"] == answers[1]["status"]  # the reason phrase too
    assert answers[0]["body"] == answers[1]["body"]
    assert header_names_and_values(answers[0]) == header_names_and_values(answers[1])
    assert [a["input"].read_started for a in answers] == [False, False]
    assert Event.objects.count() == events  # nothing attributed to anyone
    assert File.objects.count() == 0
    assert stored_blobs() == [] and spooled_files() == []


def test_a_foreign_host_is_refused_before_the_upload_is_read(chains, alice, alice_token, tmp_path):
    _whole, uploads = chains
    events = Event.objects.count()
    answer = post_file(uploads, make_wheel(tmp_path), alice_token, HTTP_HOST="evil.example")
    assert answer["status"].startswith("400")
    assert b"evil.example" not in answer["body"]
    assert all("evil.example" not in value for _name, value in answer["headers"])
    assert answer["input"].read_started is False
    assert Event.objects.count() == events
    assert File.objects.count() == 0
    assert stored_blobs() == [] and spooled_files() == []


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
