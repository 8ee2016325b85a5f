"""The read side against a live server: pypi-simple, raw HTTP, files and the PyPI JSON API."""

from __future__ import annotations

import re
from email.parser import BytesParser
from urllib.parse import urljoin, urlsplit

import pytest
from pypi_simple import ACCEPT_HTML_ONLY, ACCEPT_JSON_ONLY, PyPISimple

from tests.e2e._support import (
    PIP_ACCEPT,
    SIMPLE_JSON,
    UV_ACCEPT,
    BuiltDist,
    LiveServer,
    sha256_of,
)

pytestmark = pytest.mark.e2e

FORMATS = {"html": ACCEPT_HTML_ONLY, "json": ACCEPT_JSON_ONLY}


def _requires_python(dist: BuiltDist) -> str:
    metadata = BytesParser().parsebytes(dist.wheel_metadata(), headersonly=True)
    value = metadata["Requires-Python"]
    assert value
    return str(value)


# ---------------------------------------------------------------------------------------------
# pypi-simple


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_pypi_simple_parses_root_and_project(
    server: LiveServer, chain: dict[str, BuiltDist], fmt: str
) -> None:
    middle = chain["middle"]
    with PyPISimple(server.simple_url, session=server.http, accept=FORMATS[fmt]) as client:
        index = client.get_index_page()
        assert index.repository_version == "1.4"
        assert {"e2e-top", "e2e-middle", "e2e-bottom"} <= {p.lower() for p in index.projects}

        page = client.get_project_page("E2E_Middle")
        assert page.repository_version == "1.4"
        assert page.last_serial is not None
        by_name = {pkg.filename: pkg for pkg in page.packages}
        assert set(by_name) == {middle.wheel.name, middle.sdist.name}
        if fmt == "json":
            assert page.project == "e2e-middle"
            assert page.versions == ["1.0"]

        requires_python = _requires_python(middle)
        for path in middle.files:
            pkg = by_name[path.name]
            data = path.read_bytes()
            assert pkg.digests["sha256"] == sha256_of(data)
            assert pkg.requires_python == requires_python
            assert pkg.version == "1.0"
            assert not pkg.is_yanked
            # P8: the URL's last path segment is the file name, and there is no query string.
            split = urlsplit(pkg.url)
            assert split.path.rsplit("/", 1)[-1] == path.name and not split.query
            if fmt == "json":
                assert pkg.size == len(data)
                assert pkg.upload_time is not None
            downloaded = server.http.get(pkg.url, timeout=30)
            assert downloaded.status_code == 200
            assert downloaded.content == data

        wheel = by_name[middle.wheel.name]
        expected_metadata = middle.wheel_metadata()
        assert wheel.has_metadata is True
        assert wheel.metadata_digests == {"sha256": sha256_of(expected_metadata)}
        # verify=True checks the advertised digest against the served bytes.
        assert client.get_package_metadata_bytes(wheel, verify=True) == expected_metadata
        raw = server.http.get(wheel.metadata_url, timeout=30)
        assert raw.status_code == 200
        assert raw.content == expected_metadata
        assert "Content-Encoding" not in raw.headers

        sdist = by_name[middle.sdist.name]
        assert not sdist.has_metadata
        assert server.http.get(sdist.metadata_url, timeout=30).status_code == 404


# ---------------------------------------------------------------------------------------------
# Content negotiation and redirects


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (PIP_ACCEPT, "application/vnd.pypi.simple.v1+json"),
        (UV_ACCEPT, "application/vnd.pypi.simple.v1+json"),
        ("text/html", "text/html"),
        ("application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.v1+html"),
        ("application/vnd.pypi.simple.latest+json", "application/vnd.pypi.simple.v1+json"),
        (None, "text/html"),
    ],
    ids=["pip", "uv", "text-html", "v1-html", "latest-json", "no-accept"],
)
def test_negotiation(
    server: LiveServer, chain: dict[str, BuiltDist], accept: str | None, content_type: str
) -> None:
    headers = {"Accept": accept} if accept is not None else {}
    for path in ("/simple/", "/simple/e2e-middle/"):
        response = server.get(path, headers=headers)
        assert response.status_code == 200, (path, response.status_code)
        assert response.headers["Content-Type"].split(";")[0] == content_type
        assert "Accept" in [v.strip() for v in response.headers.get("Vary", "").split(",")]
        if content_type.endswith("json"):
            assert response.json()["meta"]["api-version"] == "1.4"
        else:
            assert '<meta name="pypi:repository-version" content="1.4">' in response.text


@pytest.mark.parametrize("accept", [PIP_ACCEPT, "text/html"], ids=["json", "html"])
def test_unknown_project_is_404(server: LiveServer, accept: str) -> None:
    response = server.get("/simple/no-such-project-e2e/", headers={"Accept": accept})
    assert response.status_code == 404


def test_redirects_to_the_normalized_url(server: LiveServer, chain: dict[str, BuiltDist]) -> None:
    response = server.get("/simple/E2E_Middle/", headers={"Accept": PIP_ACCEPT})
    assert response.status_code == 301
    assert urljoin(response.url, response.headers["Location"]) == server.url("/simple/e2e-middle/")

    response = server.get("/simple/e2e-middle", headers={"Accept": PIP_ACCEPT})
    assert response.status_code == 301
    assert urljoin(response.url, response.headers["Location"]) == server.url("/simple/e2e-middle/")

    response = server.get("/simple/E2E.Middle")
    assert response.status_code == 301
    assert urljoin(response.url, response.headers["Location"]) == server.url("/simple/e2e-middle/")


def test_etags_and_conditional_requests(server: LiveServer, chain: dict[str, BuiltDist]) -> None:
    etags = {}
    for accept in (PIP_ACCEPT, "text/html"):
        first = server.get("/simple/e2e-middle/", headers={"Accept": accept})
        assert first.status_code == 200
        etag = first.headers["ETag"]
        assert etag.startswith('"') and etag.endswith('"'), etag  # strong, not W/"..."
        again = server.get("/simple/e2e-middle/", headers={"Accept": accept, "If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["ETag"] == etag
        assert "Accept" in again.headers.get("Vary", "")
        stale = server.get(
            "/simple/e2e-middle/", headers={"Accept": accept, "If-None-Match": '"stale"'}
        )
        assert stale.status_code == 200
        assert stale.content == first.content
        etags[accept] = etag
        head = server.http.head(
            server.url("/simple/e2e-middle/"), headers={"Accept": accept}, timeout=30
        )
        assert head.status_code == 200
        assert head.content == b""
        assert int(head.headers["Content-Length"]) == len(first.content)
        assert head.headers["ETag"] == etag
    # P16: one URL, two representations, two ETags.
    assert etags[PIP_ACCEPT] != etags["text/html"]


def test_html_and_json_describe_the_same_files(
    server: LiveServer, chain: dict[str, BuiltDist]
) -> None:
    html = server.get("/simple/e2e-middle/", headers={"Accept": "text/html"}).text
    anchors = re.findall(r'<a href="([^"#]+)#sha256=([0-9a-f]{64})"[^>]*>([^<]+)</a>', html)
    from_html = {text: digest for _href, digest, text in anchors}
    assert from_html == server.simple_files("e2e-middle")
    assert 'data-requires-python="&lt;4,&gt;=3.8"' in html or (
        'data-requires-python="&gt;=3.8,&lt;4"' in html
    )


# ---------------------------------------------------------------------------------------------
# Files


def _wheel_url(server: LiveServer, project: str) -> tuple[str, dict[str, object]]:
    page = server.simple_json(project)
    assert page is not None
    (entry,) = [f for f in page["files"] if f["filename"].endswith(".whl")]
    return urljoin(server.url(f"/simple/{project}/"), entry["url"]), entry


def test_file_download_headers_and_ranges(server: LiveServer, chain: dict[str, BuiltDist]) -> None:
    bottom = chain["bottom"]
    data = bottom.wheel.read_bytes()
    url, entry = _wheel_url(server, "e2e-bottom")
    assert entry["size"] == len(data)

    full = server.http.get(url, headers={"Accept-Encoding": "gzip, deflate"}, timeout=30)
    assert full.status_code == 200
    assert "Content-Encoding" not in full.headers
    assert int(full.headers["Content-Length"]) == len(data)
    assert full.headers["Accept-Ranges"] == "bytes"
    assert full.content == data
    assert sha256_of(full.content) == entry["hashes"]["sha256"]  # type: ignore[index]

    head = server.http.head(url, timeout=30)
    assert head.status_code == 200
    assert int(head.headers["Content-Length"]) == len(data)
    assert head.headers["Accept-Ranges"] == "bytes"

    ranged = server.http.get(
        url, headers={"Range": "bytes=10-99", "Accept-Encoding": "gzip"}, timeout=30
    )
    assert ranged.status_code == 206
    assert ranged.headers["Content-Range"] == f"bytes 10-99/{len(data)}"
    assert int(ranged.headers["Content-Length"]) == 90
    assert "Content-Encoding" not in ranged.headers
    assert ranged.content == data[10:100]

    # A Range whose If-Range validator no longer matches gets the whole file.
    stale = server.http.get(url, headers={"Range": "bytes=0-9", "If-Range": '"stale"'}, timeout=30)
    assert stale.status_code == 200
    assert stale.content == data

    tail = server.http.get(url, headers={"Range": "bytes=-20"}, timeout=30)
    assert tail.status_code == 206
    assert tail.headers["Content-Range"] == f"bytes {len(data) - 20}-{len(data) - 1}/{len(data)}"
    assert tail.content == data[-20:]

    # The tarball is served as it is, never as Content-Encoding: gzip.
    sdist_page = server.simple_json("e2e-bottom")
    assert sdist_page is not None
    (sdist_entry,) = [f for f in sdist_page["files"] if f["filename"].endswith(".tar.gz")]
    sdist = server.http.get(
        urljoin(server.url("/simple/e2e-bottom/"), sdist_entry["url"]),
        headers={"Accept-Encoding": "gzip"},
        timeout=30,
        stream=True,
    )
    assert sdist.status_code == 200
    assert "Content-Encoding" not in sdist.headers
    assert sdist.raw.read() == bottom.sdist.read_bytes()


def test_unknown_file_is_404(server: LiveServer, chain: dict[str, BuiltDist]) -> None:
    url, _entry = _wheel_url(server, "e2e-bottom")
    other_name = url.rsplit("/", 1)[0] + "/other-1.0-py3-none-any.whl"
    assert server.http.get(other_name, timeout=30).status_code == 404
    assert server.http.get(url + ".asc", timeout=30).status_code == 404


# ---------------------------------------------------------------------------------------------
# The PyPI JSON API


def test_pypi_json_api(server: LiveServer, chain: dict[str, BuiltDist]) -> None:
    middle = chain["middle"]
    simple_hashes = server.simple_files("e2e-middle")

    response = server.get("/pypi/e2e-middle/json")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["info"]["name"] == "e2e-middle"
    assert body["info"]["version"] == "1.0"
    assert body["info"]["requires_python"] == _requires_python(middle)
    assert any(r.startswith("e2e-bottom") for r in body["info"]["requires_dist"])
    assert set(body["releases"]) == {"1.0"}
    assert {f["filename"] for f in body["releases"]["1.0"]} == set(simple_hashes)
    assert {f["filename"]: f["digests"]["sha256"] for f in body["urls"]} == simple_hashes
    for entry in body["urls"]:
        assert entry["url"].startswith(server.base_url + "/files/")
        assert entry["packagetype"] in {"sdist", "bdist_wheel"}
        assert entry["upload_time_iso_8601"].endswith("Z")

    for version in ("1.0", "1.0.0"):
        response = server.get(f"/pypi/e2e-middle/{version}/json")
        assert response.status_code == 200, version
        release = response.json()
        assert release["info"]["version"] == "1.0"
        assert {f["filename"]: f["digests"]["sha256"] for f in release["urls"]} == simple_hashes
        assert "releases" not in release

    etag = response.headers["ETag"]
    cached = server.get("/pypi/e2e-middle/1.0.0/json", headers={"If-None-Match": etag})
    assert cached.status_code == 304

    assert server.get("/pypi/e2e-middle/9.9/json").status_code == 404
    assert server.get("/pypi/no-such-project-e2e/json").status_code == 404
    redirect = server.get("/pypi/E2E_Middle/json")
    assert redirect.status_code == 301
    assert urljoin(redirect.url, redirect.headers["Location"]) == server.url(
        "/pypi/e2e-middle/json"
    )


def test_healthz(server: LiveServer) -> None:
    response = server.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_simple_json_page_is_well_formed(server: LiveServer, chain: dict[str, BuiltDist]) -> None:
    response = server.get("/simple/e2e-top/", headers={"Accept": SIMPLE_JSON})
    body = response.json()
    assert body["name"] == "e2e-top"
    assert body["versions"] == ["1.0"]
    for entry in body["files"]:
        assert set(entry) >= {"filename", "url", "hashes", "size", "upload-time"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z", entry["upload-time"])
        assert "dist-info-metadata" not in entry
        assert entry["yanked"] is False
    root = server.get("/simple/", headers={"Accept": SIMPLE_JSON}).json()
    assert {"e2e-top", "e2e-middle", "e2e-bottom"} <= {p["name"] for p in root["projects"]}
