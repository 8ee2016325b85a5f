"""Idle connections never hold a worker's threads (the uv stall of issue 12).

Installers open several connections at once and may leave some idle. With gunicorn's own
gthread worker each new connection takes a pool thread for up to 5 s while it waits for a
request, so as many idle connections as threads stall every other request for 5 s. bastion's
worker waits for first bytes on its poller instead: a request is answered at once however many
idle connections are open.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

from tests.e2e._support import SERVER_STOP_GRACE, LiveServer, clean_environ, serve
from tests.processes import free_port, stop_process_group

THREADS = 4  # bastion.server: threads per worker


def _get(port: int, path: str, *, timeout: float) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        conn.sendall(head.encode())
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _start(tmp_path: Path, **extra_env: str) -> tuple[LiveServer, object, int]:
    port = free_port()
    env = clean_environ()
    env["BASTION_DATA_DIR"] = str(tmp_path / "data")
    env["BASTION_BASE_URL"] = f"http://127.0.0.1:{port}"
    env.update(extra_env)
    live = LiveServer(
        backend="sqlite",
        base_url=f"http://127.0.0.1:{port}",
        data_dir=tmp_path / "data",
        env=env,
        stderr_path=tmp_path / "server.stderr.log",
    )
    return live, serve(live, workers=1, timeout=60), port


def test_a_slow_sender_is_cut_off_while_others_are_served(tmp_path: Path) -> None:
    """BASTION_READ_TIMEOUT: a client that stops sending its headers, or its body, loses the
    connection after that many seconds; meanwhile every thread stays free for others."""
    live, process, port = _start(tmp_path, BASTION_READ_TIMEOUT="2")
    try:
        stalled = []
        for start in (
            b"GET /simple/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",  # headers never end
            b"POST /legacy/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n\r\n--x\r\n",  # body stops
        ) * THREADS:
            conn = socket.create_connection(("127.0.0.1", port), timeout=20)
            conn.sendall(start)
            stalled.append(conn)
        # every thread may be reading a stalled request: others are still answered
        assert _get(port, "/healthz", timeout=10).startswith(b"HTTP/1.1 200")
        for conn in stalled:
            # the server gives up on the slow client: the connection ends (a 4xx, or closed)
            # well before the client's own 20 s timeout
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            assert data == b"" or data.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4")), data[:200]
            conn.close()
        assert _get(port, "/healthz", timeout=10).startswith(b"HTTP/1.1 200")
    finally:
        live.close()
        stop_process_group(process, grace=SERVER_STOP_GRACE)


def test_idle_connections_do_not_delay_requests(tmp_path: Path) -> None:
    port = free_port()
    env = clean_environ()
    env["BASTION_DATA_DIR"] = str(tmp_path / "data")
    env["BASTION_BASE_URL"] = f"http://127.0.0.1:{port}"
    live = LiveServer(
        backend="sqlite",
        base_url=f"http://127.0.0.1:{port}",
        data_dir=tmp_path / "data",
        env=env,
        stderr_path=tmp_path / "server.stderr.log",
    )
    process = serve(live, workers=1, timeout=60)
    try:
        with contextlib.ExitStack() as idle:
            for _ in range(THREADS * 2):
                idle.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
            # Every thread would be waiting on an idle connection for 5 s: a 2 s budget for
            # three requests in a row fails on gunicorn's own gthread worker, every time.
            for path in ("/healthz", "/simple/", "/healthz"):
                answer = _get(port, path, timeout=2.0)
                assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    finally:
        live.close()
        stop_process_group(process, grace=SERVER_STOP_GRACE)
