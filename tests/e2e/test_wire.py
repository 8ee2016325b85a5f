"""Simple pages answered from the socket by the worker (bastion.index.wire), on a live server.

The answer is byte for byte gunicorn's (but the Date): each request is sent twice, once as is
and once with a field sent twice, which the socket path leaves to gunicorn and Django. Hostile
and unusual byte streams (pipelined requests, a head split across packets, a body smuggled
behind a GET) are answered as gunicorn answers them, and a kept-alive connection sees a new
upload at once.
"""

from __future__ import annotations

import base64
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e._support import SERVER_STOP_GRACE, LiveServer, wheel_form
from tests.e2e.test_idle_connections import _start
from tests.processes import stop_process_group
from tests.unit.core.builders import make_wheel

JSON = "application/vnd.pypi.simple.v1+json"
DECLINED = b"X-Twice: 1\r\nX-Twice: 2\r\n"  # never taken from the socket: gunicorn answers


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live, process, _port = _start(tmp_path_factory.mktemp("wire"))
    try:
        live.cli_ok("user", "create", "wren", "--email", "wren@example.com")
        live.token = live.cli_ok("token", "create", "wren")
        _upload(live, tmp_path_factory.mktemp("wire-dists"), "1.0")
        yield live
    finally:
        live.close()
        stop_process_group(process, grace=SERVER_STOP_GRACE)


def _upload(live: LiveServer, tmp_path: Path, version: str) -> None:
    folder = tmp_path / version
    folder.mkdir()
    fields, files = wheel_form(make_wheel(folder, name="wire-demo", version=version))
    auth = "Basic " + base64.b64encode(f"__token__:{live.token}".encode()).decode()
    answer = live.http.post(
        live.upload_url, data=fields, files=files, headers={"Authorization": auth}, timeout=60
    )
    assert answer.status_code == 200, answer.text


class Conn:
    """A raw HTTP/1.x connection that reads answers by their Content-Length."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *_: object) -> None:
        self.sock.close()

    def answer(self, *, head_request: bool = False) -> tuple[bytes, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status, *lines = head.decode("latin-1").split("\r\n")
        fields = dict(line.split(": ", 1) for line in lines)
        length = 0 if head_request else int(fields.get("Content-Length", "0"))
        while len(self.buffer) < length:
            self._more()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status.encode(), fields, body

    def closed(self) -> bool:
        """Whether the server closes the connection (nothing more comes)."""
        try:
            return self.buffer == b"" and self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, f"connection closed; read so far: {self.buffer[:300]!r}"
        self.buffer += chunk


def _port(live: LiveServer) -> int:
    port = re.search(r":(\d+)$", live.base_url)
    assert port is not None
    return int(port.group(1))


def _exchange(live: LiveServer, raw: bytes, *, head_request: bool = False):
    with Conn(_port(live)) as conn:
        conn.sock.sendall(raw)
        return conn.answer(head_request=head_request)


def _without_date(fields: dict[str, str]) -> dict[str, str]:
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", fields["Date"])
    return {name: value for name, value in fields.items() if name != "Date"}


def _gunicorns_answer(live: LiveServer, head: bytes, *, head_request: bool):
    """The socket's answer to the request ``head``, checked to be gunicorn's: the same request
    with a field sent twice, which the socket path leaves to gunicorn and Django."""
    served = _exchange(live, head + b"\r\n", head_request=head_request)
    by_gunicorn = _exchange(live, head + DECLINED + b"\r\n", head_request=head_request)
    assert served[0] == by_gunicorn[0] == b"HTTP/1.1 200 OK"
    assert _without_date(served[1]) == _without_date(by_gunicorn[1])
    assert served[2] == by_gunicorn[2]
    assert list(served[1])[:3] == ["Server", "Date", "Connection"]
    return served


@pytest.mark.parametrize(
    "method, path, extra",
    [
        ("GET", "/simple/wire-demo/", b""),
        ("GET", "/simple/wire-demo/", f"Accept: {JSON}\r\n".encode()),
        ("GET", "/simple/wire-demo/", b"Accept: application/vnd.pypi.simple.v1+html\r\n"),
        ("HEAD", "/simple/wire-demo/", b""),
        ("GET", "/simple/", f"Accept: {JSON}\r\n".encode()),
        ("GET", "/simple/", b"Connection: close\r\n"),
    ],
)
def test_the_socket_answer_is_gunicorns(live: LiveServer, method, path, extra) -> None:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode() + extra
    live.get(path)  # published in the tree
    served = _gunicorns_answer(live, head, head_request=method == "HEAD")
    etag = served[1]["ETag"]
    not_modified = _exchange(live, head + f"If-None-Match: {etag}\r\n\r\n".encode())
    by_gunicorn = _exchange(live, head + DECLINED + f"If-None-Match: {etag}\r\n\r\n".encode())
    assert not_modified[0] == by_gunicorn[0] == b"HTTP/1.1 304 Not Modified"
    assert _without_date(not_modified[1]) == _without_date(by_gunicorn[1])
    assert not_modified[2] == by_gunicorn[2] == b""


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("suffix", ["", ".metadata"])
def test_a_download_from_the_socket_is_gunicorns(live: LiveServer, method, suffix) -> None:
    page = live.simple_json("wire-demo")
    assert page is not None
    (wheel,) = [f for f in page["files"] if f["filename"] == "wire_demo-1.0-py3-none-any.whl"]
    path = "/files/" + wheel["url"].split("#")[0].split("/files/", 1)[1] + suffix
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
    served = _gunicorns_answer(live, head, head_request=method == "HEAD")
    if method == "GET":
        assert len(served[2]) == int(served[1]["Content-Length"]) > 0
    etag = served[1]["ETag"]
    not_modified = _exchange(live, head + f"If-None-Match: {etag}\r\n\r\n".encode())
    assert not_modified[0] == b"HTTP/1.1 304 Not Modified" and not_modified[2] == b""


def test_pipelined_and_split_requests_are_each_answered(live: LiveServer) -> None:
    live.get("/simple/wire-demo/")
    get = b"GET /simple/wire-demo/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with Conn(_port(live)) as conn:
        conn.sock.sendall(get * 3)  # three in one packet
        answers = [conn.answer() for _ in range(3)]
        assert {status for status, _, _ in answers} == {b"HTTP/1.1 200 OK"}
        assert len({body for _, _, body in answers}) == 1
        for cut in (5, 20, len(get) - 2, len(get) - 1):  # a head in two packets
            conn.sock.sendall(get[:cut])
            time.sleep(0.05)
            conn.sock.sendall(get[cut:])
            assert conn.answer()[2] == answers[0][2]


def test_a_body_smuggled_behind_a_get_is_not_a_second_request(live: LiveServer) -> None:
    """Content-Length and Transfer-Encoding together: gunicorn refuses the request, and the
    bytes behind it are never answered as a request of their own."""
    smuggled = b"GET /simple/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    raw = (
        b"GET /simple/wire-demo/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: "
        + str(5 + len(smuggled)).encode()
        + b"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        + smuggled
    )
    with Conn(_port(live)) as conn:
        conn.sock.sendall(raw)
        status, _, _ = conn.answer()
        assert status.startswith(b"HTTP/1.1 400"), status
        assert conn.closed()


def test_connection_close_and_http_1_0_close_the_connection(live: LiveServer) -> None:
    live.get("/simple/wire-demo/")
    for raw in (
        b"GET /simple/wire-demo/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        b"GET /simple/wire-demo/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
    ):
        with Conn(_port(live)) as conn:
            conn.sock.sendall(raw)
            status, fields, _ = conn.answer()
            assert status.endswith(b" 200 OK") and fields["Connection"] == "close"
            assert conn.closed()
    with Conn(_port(live)) as conn:  # HTTP/1.0 asking for keep-alive keeps it
        for _ in range(2):
            conn.sock.sendall(
                b"GET /simple/wire-demo/ HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                b"Connection: keep-alive\r\n\r\n"
            )
            status, fields, _ = conn.answer()
            assert status == b"HTTP/1.0 200 OK" and fields["Connection"] == "keep-alive"


def test_an_unknown_host_is_refused_as_django_refuses_it(live: LiveServer) -> None:
    live.get("/simple/wire-demo/")
    status, _, body = _exchange(
        live, b"GET /simple/wire-demo/ HTTP/1.1\r\nHost: evil.example\r\n\r\n"
    )
    assert status.startswith(b"HTTP/1.1 400") and b"unknown host" in body
    assert b"evil.example" not in body


def test_a_kept_alive_connection_sees_an_upload_at_once(live: LiveServer, tmp_path: Path) -> None:
    get = b"GET /simple/wire-demo/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    live.get("/simple/wire-demo/")
    with Conn(_port(live)) as conn:
        conn.sock.sendall(get)
        _, before, body = conn.answer()
        assert b"wire_demo-2.0" not in body
        _upload(live, tmp_path, "2.0")
        for _ in range(2):  # the first may render it, the second comes from the tree
            conn.sock.sendall(get)
            _, after, body = conn.answer()
            assert b"wire_demo-2.0-py3-none-any.whl" in body
            assert int(after["X-PyPI-Last-Serial"]) > int(before["X-PyPI-Last-Serial"])


def test_a_page_larger_than_the_socket_takes_is_finished_by_a_thread(
    live: LiveServer, tmp_path: Path
) -> None:
    """The poller's thread sends what the socket takes at once; a client that reads slowly
    gets the rest from a pool thread, while the poller answers other clients meanwhile."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:  # a page of ~100 files: far more than one send
        list(pool.map(lambda n: _upload(live, tmp_path, f"0.{n}"), range(100)))
    live.get("/simple/wire-demo/")
    get = b"GET /simple/wire-demo/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    expected = _exchange(live, get + DECLINED + b"\r\n")
    assert len(expected[2]) > 20_000
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    slow.settimeout(10)
    slow.connect(("127.0.0.1", _port(live)))
    with Conn(_port(live)) as conn, slow:
        slow.sendall(get)
        time.sleep(0.3)  # unread: the server cannot send it all
        for _ in range(3):  # others are answered meanwhile
            conn.sock.sendall(get)
            assert conn.answer()[2] == expected[2]
        reader = Conn.__new__(Conn)
        reader.sock, reader.buffer = slow, b""
        for round in range(2):  # all of it, and the connection stays open for the next
            status, fields, body = reader.answer()
            assert status == b"HTTP/1.1 200 OK" and body == expected[2]
            assert _without_date(fields) == _without_date(expected[1])
            if round == 0:
                slow.sendall(get)
