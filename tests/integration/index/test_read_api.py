"""The read API through the Django test client: negotiation, caching, query counts, files."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.http import http_date

from bastion.projects.models import File, IndexState, Project, ProjectStatus, Release
from tests.integration.conftest import basic
from tests.integration.uploads.test_upload_endpoint import form_for
from tests.unit.core.builders import make_sdist, make_wheel

pytestmark = pytest.mark.django_db

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
JSON_TYPE = "application/vnd.pypi.simple.v1+json"


@pytest.fixture
def published(client, alice, alice_token, tmp_path):
    wheel = make_wheel(
        tmp_path,
        name="Demo_Pkg",
        version="1.0",
        metadata_overrides={"Requires-Python": "<4,>=3.8", "Summary": "A demo"},
    )
    sdist = make_sdist(tmp_path, name="Demo_Pkg", version="1.0")
    newer = make_wheel(tmp_path, name="Demo_Pkg", version="2.0b1")
    for path in (wheel, sdist, newer):
        response = client.post(
            "/legacy/", data=form_for(path), HTTP_AUTHORIZATION=basic(alice_token)
        )
        assert response.status_code == 200, response.content
    return {"wheel": wheel, "sdist": sdist, "newer": newer}


def bump(project: Project) -> None:
    state = IndexState.objects.get(pk=1)
    Project.objects.filter(pk=project.pk).update(serial=state.serial + 1)
    IndexState.objects.filter(pk=1).update(serial=state.serial + 1)


def test_html_page_lists_files_with_hashes_and_attributes(client, published):
    response = client.get("/simple/demo-pkg/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert response["Vary"] == "Accept"
    body = response.content.decode()
    assert body.startswith("<!DOCTYPE html>")
    assert '<meta name="pypi:repository-version" content="1.4">' in body
    wheel = published["wheel"]
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert f"{wheel.name}#sha256={digest}" in body
    assert 'data-requires-python="&lt;4,&gt;=3.8"' in body
    metadata = zipfile.ZipFile(wheel).read("demo_pkg-1.0.dist-info/METADATA")
    value = "sha256=" + hashlib.sha256(metadata).hexdigest()
    assert f'data-core-metadata="{value}"' in body
    assert f'data-dist-info-metadata="{value}"' in body
    sdist_anchor = re.search(r"<a [^>]*>demo_pkg-1.0.tar.gz</a>", body).group(0)
    assert "core-metadata" not in sdist_anchor


def test_json_page_for_pip(client, published):
    response = client.get("/simple/demo-pkg/", HTTP_ACCEPT=PIP_ACCEPT)
    assert response["Content-Type"] == JSON_TYPE
    page = json.loads(response.content)
    assert page["meta"]["api-version"] == "1.4"
    assert page["name"] == "demo-pkg"
    assert page["versions"] == ["1.0", "2.0b1"]
    assert page["project-status"] == {"status": "active"}
    files = {f["filename"]: f for f in page["files"]}
    wheel = files[published["wheel"].name]
    assert wheel["hashes"] == {
        "sha256": hashlib.sha256(published["wheel"].read_bytes()).hexdigest()
    }
    assert wheel["requires-python"] == "<4,>=3.8"
    assert wheel["size"] == published["wheel"].stat().st_size
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", wheel["upload-time"])
    assert wheel["yanked"] is False
    assert files[published["sdist"].name]["core-metadata"] is False
    assert "dist-info-metadata" not in response.content.decode()
    for entry in page["files"]:
        assert None not in (entry["filename"], entry["url"], entry["hashes"], entry["size"])


def test_hit_costs_one_query_and_304_on_matching_etag(client, published):
    client.get("/simple/demo-pkg/")  # render once
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/simple/demo-pkg/")
    assert response.status_code == 200
    # the session/auth middleware does not touch the database for anonymous requests; the
    # one query checks freshness, the bytes come from the worker's memory
    assert len(queries) == 1 and '"body"' not in queries[0]["sql"]
    etag = response["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    with CaptureQueriesContext(connection) as queries:
        again = client.get("/simple/demo-pkg/", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    assert len(queries) == 1 and '"body"' not in queries[0]["sql"]
    stale = client.get("/simple/demo-pkg/", HTTP_IF_NONE_MATCH='"stale"')
    assert stale.status_code == 200 and stale.content == response.content
    json_etag = client.get("/simple/demo-pkg/", HTTP_ACCEPT=JSON_TYPE)["ETag"]
    v1_html_etag = client.get(
        "/simple/demo-pkg/", HTTP_ACCEPT="application/vnd.pypi.simple.v1+html"
    )["ETag"]
    assert len({etag, json_etag, v1_html_etag}) == 3


def test_a_body_not_in_memory_is_read_once_then_served_from_memory(client, published):
    from bastion.index.pages import BODIES

    first = client.get("/simple/demo-pkg/")
    BODIES.clear()  # as in another worker, or after eviction
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/simple/demo-pkg/")
    assert response.content == first.content
    assert len(queries) == 2 and '"body"' in queries[1]["sql"]
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/simple/demo-pkg/").content == first.content
    assert len(queries) == 1


def test_the_body_cache_is_bounded_and_keyed_by_content():
    from bastion.index.pages import BodyCache

    cache = BodyCache(max_bytes=100, max_item_bytes=25)
    cache.put("a", b"x" * 20)
    cache.put("b", b"y" * 20)
    cache.put("huge", b"z" * 30)  # larger than one item may be: never kept
    assert cache.get("huge") is None
    cache.get("a")  # recently used
    for name in "cdef":
        cache.put(name, b"w" * 20)
    assert cache.get("a") is not None and cache.get("b") is None


def test_query_count_does_not_grow_with_files(client, alice, alice_token, tmp_path):
    def count() -> int:
        client.get("/simple/demo/")
        bump(Project.objects.get())
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/simple/demo/").status_code == 200
        return len(queries)

    client.post(
        "/legacy/",
        data=form_for(make_wheel(tmp_path, version="1.0")),
        HTTP_AUTHORIZATION=basic(alice_token),
    )
    few = count()
    for n in range(2, 8):
        client.post(
            "/legacy/",
            data=form_for(make_wheel(tmp_path, version=f"{n}.0")),
            HTTP_AUTHORIZATION=basic(alice_token),
        )
    assert count() == few


def test_upload_invalidates_the_cached_page(client, published, alice_token, tmp_path):
    first = client.get("/simple/demo-pkg/")
    newer = make_wheel(tmp_path, name="Demo_Pkg", version="3.0")
    client.post("/legacy/", data=form_for(newer), HTTP_AUTHORIZATION=basic(alice_token))
    second = client.get("/simple/demo-pkg/", HTTP_IF_NONE_MATCH=first["ETag"])
    assert second.status_code == 200
    assert newer.name in second.content.decode()


def test_yanked_and_quarantined_rendering(client, published):
    project = Project.objects.get()
    File.objects.filter(release__version="2.0b1").update(yanked=True, yanked_reason="")
    File.objects.filter(release__version="1.0").update(yanked=True, yanked_reason="broken")
    bump(project)
    html = client.get("/simple/demo-pkg/").content.decode()
    assert 'data-yanked=""' in html and 'data-yanked="broken"' in html
    page = json.loads(client.get("/simple/demo-pkg/", HTTP_ACCEPT=JSON_TYPE).content)
    assert {f["yanked"] for f in page["files"]} == {True, "broken"}

    Project.objects.filter(pk=project.pk).update(status=ProjectStatus.QUARANTINED)
    bump(project)
    IndexState.objects.filter(pk=1).update(projects_serial=99)
    html = client.get("/simple/demo-pkg/").content.decode()
    assert '<meta name="pypi:project-status" content="quarantined">' in html
    assert "<a " not in html
    assert json.loads(client.get("/simple/demo-pkg/", HTTP_ACCEPT=JSON_TYPE).content)["files"] == []
    assert "demo-pkg" not in client.get("/simple/").content.decode()
    assert client.get("/pypi/demo-pkg/json").status_code == 404
    assert client.get("/pypi/demo-pkg/1.0/json").status_code == 404
    key = File.objects.first().storage_key
    assert client.get(f"/files/{key}").status_code == 404


def test_root_page_in_both_formats(client, published):
    html = client.get("/simple/").content.decode()
    assert '<a href="demo-pkg/">Demo_Pkg</a>' in html
    page = json.loads(client.get("/simple/", HTTP_ACCEPT=JSON_TYPE).content)
    assert page == {"meta": {"api-version": "1.4"}, "projects": [{"name": "Demo_Pkg"}]}


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/simple/Demo_Pkg/", "/simple/demo-pkg/"),
        ("/simple/demo-pkg", "/simple/demo-pkg/"),
        ("/simple/DEMO.pkg", "/simple/demo-pkg/"),
        ("/pypi/Demo_Pkg/json", "/pypi/demo-pkg/json"),
    ],
)
def test_redirects(client, published, path, location):
    response = client.get(path)
    assert response.status_code == 301
    assert response["Location"] == location


@pytest.mark.parametrize("accept", [None, "text/html", JSON_TYPE, PIP_ACCEPT])
def test_unknown_project_is_404(client, db, accept):
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    assert client.get("/simple/no-such-project/", **headers).status_code == 404


def test_not_acceptable(client, published):
    assert client.get("/simple/demo-pkg/", HTTP_ACCEPT="image/png").status_code == 406


def test_format_parameter_overrides_accept(client, published):
    response = client.get(f"/simple/demo-pkg/?format={JSON_TYPE}", HTTP_ACCEPT="text/html")
    assert response["Content-Type"] == JSON_TYPE


def test_file_download_range_and_metadata(client, published):
    wheel = published["wheel"]
    data = wheel.read_bytes()
    file = File.objects.get(filename=wheel.name)
    url = f"/files/{file.storage_key}"
    response = client.get(url, HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data
    assert response["Content-Length"] == str(len(data))
    assert response["Accept-Ranges"] == "bytes"
    assert "Content-Encoding" not in response
    assert "immutable" in response["Cache-Control"]
    assert response["Last-Modified"] == http_date(file.upload_time.timestamp())
    assert response["ETag"] == f'"{file.sha256[:40]}"'

    ranged = client.get(url, HTTP_RANGE="bytes=10-19")
    assert ranged.status_code == 206
    assert ranged["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert b"".join(ranged.streaming_content) == data[10:20]
    suffix = client.get(url, HTTP_RANGE="bytes=-5")
    assert b"".join(suffix.streaming_content) == data[-5:]
    assert client.get(url, HTTP_RANGE=f"bytes={len(data)}-").status_code == 416
    stale = client.get(url, HTTP_RANGE="bytes=0-1", HTTP_IF_RANGE='"other"')
    assert stale.status_code == 200

    head = client.head(url)
    assert head.status_code == 200 and head["Content-Length"] == str(len(data))

    metadata = client.get(url + ".metadata")
    member = zipfile.ZipFile(wheel).read("demo_pkg-1.0.dist-info/METADATA")
    assert b"".join(metadata.streaming_content) == member
    sdist = File.objects.get(filename=published["sdist"].name)
    assert client.get(f"/files/{sdist.storage_key}.metadata").status_code == 404
    assert client.get(f"/files/{file.storage_key[:-3]}xyz").status_code == 404


def test_pypi_json_api(client, published):
    page = json.loads(client.get("/pypi/demo-pkg/json").content)
    assert page["info"]["name"] == "Demo_Pkg"
    assert page["info"]["version"] == "1.0"  # the final release wins over the newer pre-release
    assert page["info"]["summary"] == "A demo"
    assert page["info"]["requires_python"] == "<4,>=3.8"
    assert set(page["releases"]) == {"1.0", "2.0b1"}
    assert page["ownership"]["roles"] == [{"role": "Owner", "user": "alice"}]
    urls = {u["filename"]: u for u in page["urls"]}
    wheel = published["wheel"]
    assert urls[wheel.name]["digests"]["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert urls[wheel.name]["url"].startswith(settings.BASTION.base_url + "/files/")
    assert urls[wheel.name]["packagetype"] == "bdist_wheel"
    assert urls[published["sdist"].name]["python_version"] == "source"

    version = json.loads(client.get("/pypi/demo-pkg/1.0.0/json").content)
    assert version["info"]["version"] == "1.0"
    assert "releases" not in version
    assert client.get("/pypi/demo-pkg/9.9/json").status_code == 404
    assert client.get("/pypi/nothing/json").status_code == 404
    Release.objects.filter(version="1.0").update(yanked=True)
    bump(Project.objects.get())
    assert json.loads(client.get("/pypi/demo-pkg/json").content)["info"]["version"] == "2.0b1"


def test_web_pages(client, published):
    assert "Demo_Pkg" in client.get("/").content.decode()
    page = client.get("/project/demo-pkg/")
    assert page.status_code == 200 and "A demo" in page.content.decode()
    assert client.get("/project/nothing/").status_code == 404
    assert "Demo_Pkg" in client.get("/search/?q=demo").content.decode()


def test_healthz(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert json.loads(response.content)["status"] == "ok"


def test_healthz_names_the_dependency_that_is_down(client, db, monkeypatch):
    """Storage really unreachable: an S3 endpoint on a loopback port where nothing listens."""
    import dataclasses

    from django.conf import settings
    from django.test import override_settings

    from tests.processes import free_port

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    dead = f"s3://bucket/prefix?endpoint_url=http://127.0.0.1:{free_port()}"
    with override_settings(BASTION=dataclasses.replace(settings.BASTION, storage_url=dead)):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert json.loads(response.content) == {
        "status": "degraded",
        "database": "ok",
        "storage": "unavailable",
    }
    assert response.reason_phrase == "Service Unavailable: storage unavailable"
