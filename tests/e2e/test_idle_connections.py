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
