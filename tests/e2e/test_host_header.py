"""A live ``bastion serve`` never answers for a foreign Host (raw HTTP, so the header is exactly
what the test writes), except /healthz; the WSGI fast path in front of Django included."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest

from tests.e2e._support import SIMPLE_JSON, BuiltDist, LiveServer, normalize

pytestmark = pytest.mark.e2e

FOREIGN = "evil.example"


def raw(server: LiveServer, head: str) -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` (request line and headers, no blank line) and read the whole answer."""
    address = urlsplit(server.base_url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    data = b"".join(chunks)
    header_block, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = header_block.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def get(server: LiveServer, path: str, host: str | None, accept: str = "*/*") -> tuple:
    host_line = f"\r\nHost: {host}" if host is not None else ""
    version = "HTTP/1.1" if host is not None else "HTTP/1.0"
    return raw(server, f"GET {path} {version}{host_line}\r\nAccept: {accept}")


def test_a_foreign_host_gets_400_from_every_read_path(
    server: LiveServer, twine_demo: BuiltDist
) -> None:
    own = urlsplit(server.base_url).netloc
    page = f"/simple/{normalize(twine_demo.name)}/"
    # Cache the page (a good host twice: rendered, then served by the fast path).
    for _ in range(2):
        status, headers, body = get(server, page, own, SIMPLE_JSON)
        assert status == 200 and json.loads(body)["name"] == normalize(twine_demo.name)
    for path, accept in ((page, SIMPLE_JSON), (page, "text/html")):
        for host in (FOREIGN, f"{FOREIGN}:{urlsplit(server.base_url).port}"):
            status, headers, body = get(server, path, host, accept)
            assert status == 400, (path, host, status, body[:200])
            assert headers["content-type"] == "text/plain; charset=utf-8"
            assert body == f"400 Bad Request: unknown host; this index answers as {own}\n".encode()
    status, _headers, body = get(server, f"/pypi/{normalize(twine_demo.name)}/json", FOREIGN)
    assert status == 400 and FOREIGN.encode() not in body
    # The JSON API through a good (loopback alias) host: URLs from the base URL.
    alias = f"localhost:{urlsplit(server.base_url).port}"
    status, _headers, body = get(server, f"/pypi/{normalize(twine_demo.name)}/json", alias)
    assert status == 200
    urls = [entry["url"] for entry in json.loads(body)["urls"]]
    assert urls and all(url.startswith(server.base_url + "/files/") for url in urls)


@pytest.mark.parametrize("host", [FOREIGN, "10.1.2.3:8000", None])
def test_healthz_answers_any_host(server: LiveServer, host: str | None) -> None:
    status, headers, body = get(server, "/healthz", host)
    assert status == 200, body
    assert json.loads(body)["status"] == "ok"
    assert headers["cache-control"] == "no-store"


def test_http_1_0_without_host_is_judged_by_the_listening_address(
    server: LiveServer, twine_demo: BuiltDist
) -> None:
    # The server listens on 127.0.0.1, an accepted name while the base URL is loopback.
    status, _headers, _body = get(server, f"/simple/{normalize(twine_demo.name)}/", None)
    assert status == 200
