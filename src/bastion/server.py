"""Run bastion under gunicorn (threaded workers), never Django's development server.

gunicorn writes the status line exactly as the application gives it, so upload errors keep
their one-line reason phrase, which twine shows (P73).

``bastion serve`` prepares (checks, migrations, notices) with Django loaded, then replaces
itself (same pid) with ``python -m bastion.server``: a master that never imports Django, only
gunicorn's arbiter and the periodic TUF refresh, run as a short-lived process of its own. The
workers load the application. So the master costs a few MB instead of a whole application.
"""

from __future__ import annotations

import argparse
import errno
import os
import selectors
import socket
import sys
import time
from functools import partial
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import TConn, ThreadWorker


class _ReadTimeoutSocket(socket.socket):
    """A client socket whose blocking mode has a timeout: a client that stops sending (or
    reading) for ``read_timeout`` seconds, in its headers or its body, is cut off instead of
    holding a worker thread (slowloris). gunicorn switches sockets to blocking before reading
    each request; here that means blocking with the timeout."""

    read_timeout: float = 30.0

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(self.read_timeout)
        else:
            super().setblocking(False)


class ReadableFirstThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker, except that a new connection waits for its first bytes on
    the worker's poller instead of in a thread.

    gunicorn 27 hands each accepted connection to a pool thread that waits up to 5 s for a
    request. Installers (uv) open several connections at once and may leave some idle, so four
    such connections could hold every thread while requests queue behind them: a 5 s stall.
    Here a thread is only taken once the client has sent something; an idle connection costs
    nothing and is closed after the keep-alive timeout like any other.
    """

    def accept(self, listener: Any) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        client_sock = _ReadTimeoutSocket(
            client_sock.family, client_sock.type, client_sock.proto, fileno=client_sock.detach()
        )
        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())
        client_sock.setblocking(False)
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(
            client_sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn)
        )


class _Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from bastion.wsgi import application

        return application


def run(*, host: str, port: int, workers: int, read_timeout: float = 30.0) -> None:
    _ReadTimeoutSocket.read_timeout = read_timeout  # inherited by the forked workers
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    _Server(
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "bastion.server.ReadableFirstThreadWorker",
            "threads": 4,
            "timeout": 300,
            "graceful_timeout": 10,
            "keepalive": 5,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "proc_name": "bastion",
            "preload_app": False,
            "limit_request_line": 8190,
        }
    ).run()


def exec_master(
    *, host: str, port: int, workers: int, read_timeout: float, refresh_interval: float
) -> None:
    """Replace this process (``bastion serve``, Django loaded) by the slim master (``main``)."""
    from django.db import connections

    connections.close_all()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(
        sys.executable,
        [
            sys.executable, "-m", "bastion.server",
            "--host", host, "--port", str(port), "--workers", str(workers),
            "--read-timeout", str(read_timeout), "--refresh-interval", str(refresh_interval),
        ],
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bastion.server")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--read-timeout", type=float, required=True)
    parser.add_argument("--refresh-interval", type=float, required=True)
    args = parser.parse_args(argv)
    from bastion.signing.refresher import start

    start(args.refresh_interval)
    run(host=args.host, port=args.port, workers=args.workers, read_timeout=args.read_timeout)


if __name__ == "__main__":
    # Run as ``python -m bastion.server`` this file is ``__main__``; gunicorn imports the worker
    # class from ``bastion.server``, so settings (the read timeout) must be made on that module.
    from bastion import server

    server.main()
