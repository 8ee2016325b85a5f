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
import contextlib
import errno
import os
import selectors
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent import futures
from functools import partial
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import TConn, ThreadWorker

# Seconds an idle kept-alive connection stays open. A proxy that keeps connections to the nodes
# (the nginx front's upstream keepalive_timeout) must close them sooner: else it may send a
# request on one the node is closing, and nginx does not retry a POST (the client gets a 502).
KEEPALIVE = 5


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


class LastIdleFirstPool(futures.Executor):
    """A thread pool in which the thread idle the shortest time takes the next task.

    ``concurrent.futures.ThreadPoolExecutor`` wakes its idle threads in turn, so consecutive
    requests on one connection (twine's uploads, one after the other) went to alternate
    threads. Each thread has its own SQLite connection, whose page cache is dropped whenever
    another connection wrote since its last transaction: every request began with a cold
    cache, ~1 ms more per upload in process (median of 100, bench note on issue 12). Here the
    thread that just finished takes the next request, warm; others start only when requests
    overlap, up to ``max_workers``, and stay for later bursts.
    """

    def __init__(self, max_workers: int, thread_name_prefix: str = "bastion-request") -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._max_workers = max_workers
        self._prefix = thread_name_prefix
        self._lock = threading.Lock()
        self._tasks: deque[
            tuple[futures.Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]
        ] = deque()
        self._idle: list[threading.Event] = []  # a stack: the last thread to go idle on top
        self._threads: list[threading.Thread] = []
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> futures.Future[Any]:
        future: futures.Future[Any] = futures.Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._tasks.append((future, fn, args, kwargs))
            if self._idle:
                self._idle.pop().set()
            elif len(self._threads) < self._max_workers:
                thread = threading.Thread(
                    target=self._work,
                    name=f"{self._prefix}_{len(self._threads)}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()
        return future

    def _work(self) -> None:
        wake = threading.Event()
        while True:
            with self._lock:
                if self._tasks:
                    future, fn, args, kwargs = self._tasks.popleft()
                elif self._shutdown:
                    return
                else:
                    wake.clear()
                    self._idle.append(wake)
                    future = None
            if future is None:
                wake.wait()
                continue
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the future, as the stdlib's
                future.set_exception(exc)
            else:
                future.set_result(result)
            del future, fn, args, kwargs  # (no reference kept while idle)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while self._tasks:
                    self._tasks.popleft()[0].cancel()
            idle, self._idle = self._idle, []
            threads = list(self._threads)
        for wake in idle:
            wake.set()
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()


class ReadableFirstThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker, except that a new connection waits for its first bytes on
    the worker's poller instead of in a thread.

    gunicorn 27 hands each accepted connection to a pool thread that waits up to 5 s for a
    request. Installers (uv) open several connections at once and may leave some idle, so four
    such connections could hold every thread while requests queue behind them: a 5 s stall.
    Here a thread is only taken once the client has sent something; an idle connection costs
    nothing and is closed after the keep-alive timeout like any other.

    And a request for a simple page that the pre-rendered tree holds is answered by the
    poller's own thread, from the raw bytes (``bastion.index.wire``): no pool thread, parser or
    WSGI round. At 32 connections that more than doubles the 304s a worker answers and
    roughly doubles its 200s; anything else is gunicorn's, as before.
    """

    wire: Any = None  # bastion.index.wire.Wire, made in the worker once the app is loaded

    def get_thread_pool(self) -> LastIdleFirstPool:
        return LastIdleFirstPool(self.cfg.threads)

    def load_wsgi(self) -> None:
        super().load_wsgi()
        # The raw-socket answers of simple pages (bastion.index.wire) take plain HTTP/1.x only;
        # with TLS, HTTP/2 or an https redirect to make, gunicorn and Django decide everything.
        wsgi_module = sys.modules.get("bastion.wsgi")
        if (
            wsgi_module is None
            or self.wsgi is not getattr(wsgi_module, "application", None)
            or self.cfg.is_ssl
            or self.cfg.http2_cleartext != "off"
        ):
            return
        from django.conf import settings

        if settings.SECURE_SSL_REDIRECT:
            return
        from bastion.index.wire import Wire

        self.wire = Wire(wsgi_module.fast_path)

    def on_client_socket_readable(self, conn: TConn, client: Any) -> None:
        if not self._answer_now(conn, self.keepalived_conns):
            super().on_client_socket_readable(conn, client)

    def on_pending_socket_readable(self, conn: TConn, client: Any) -> None:
        if not self._answer_now(conn, self.pending_conns):
            super().on_pending_socket_readable(conn, client)

    def _answer_now(self, conn: TConn, waiting: deque[TConn]) -> bool:
        """Answer a cached simple page on the poller's own thread (``bastion.index.wire``),
        without a pool thread, gunicorn's parser or WSGI. True when the event is dealt with;
        False leaves it to gunicorn, with any bytes read given back to its parser."""
        wire = self.wire
        if wire is None:
            return False
        try:
            conn.init()  # plain HTTP/1.x only (load_wsgi): a parser, no handshake
            conn.sock.setblocking(False)
            if conn.parser.unreader.buf.getvalue():
                return False
            data = conn.sock.recv(wire.read_size)
        except BlockingIOError:
            return False  # nothing to read after all: a thread waits for it, as usual
        except OSError:
            data = b""  # reset: closed like a connection the client closed
        if not data:
            self._forget(conn, waiting)
            conn.close()
            return True
        try:
            reply = wire.reply(
                data,
                may_keep_alive=self.alive
                and bool(self.cfg.keepalive)
                and len(self.keepalived_conns) < self.max_keepalived,
            )
        except Exception:
            self.log.exception("Error answering from the socket; gunicorn answers instead")
            reply = None
        if reply is None:
            conn.parser.unreader.unread(data)
            return False
        sent, total = 0, len(reply.head)
        if reply.body is None or isinstance(reply.body, bytes):
            parts = [reply.head] if reply.body is None else [reply.head, reply.body]
            total += 0 if reply.body is None else len(reply.body)
            try:
                sent = conn.sock.sendmsg(parts)
            except BlockingIOError:
                pass
            except OSError:
                self._forget(conn, waiting)
                conn.close()
                return True
        if sent == total and reply.keep_alive:  # answered: wait for the next request
            waiting.remove(conn)
            conn.set_timeout()
            self.keepalived_conns.append(conn)
            if waiting is not self.keepalived_conns:
                self.poller.modify(
                    conn.sock,
                    selectors.EVENT_READ,
                    partial(self.on_client_socket_readable, conn),
                )
            return True
        # The rest (or a large file), then keep-alive or a graceful close: in a pool thread,
        # and back through gunicorn's finish_request like any request.
        self.poller.unregister(conn.sock)
        waiting.remove(conn)
        future = self.tpool.submit(_send_rest, conn, reply, sent)
        future.add_done_callback(
            lambda done: self.method_queue.defer(self.finish_request, conn, done)
        )
        return True

    def _forget(self, conn: TConn, waiting: deque[TConn]) -> None:
        self.poller.unregister(conn.sock)
        waiting.remove(conn)
        self.nr_conns -= 1

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


def _send_rest(conn: TConn, reply: Any, sent: int) -> bool:
    """What is left of ``reply`` after ``sent`` bytes (blocking, with the read timeout); True
    when the connection stays open (gunicorn's finish_request result)."""
    body = reply.body
    with contextlib.ExitStack() as stack:
        if body is not None and not isinstance(body, bytes):
            stack.enter_context(body)  # an open file: closed whatever happens
        try:
            conn.sock.setblocking(True)
            if sent < len(reply.head):
                conn.sock.sendall(memoryview(reply.head)[sent:])
            if isinstance(body, bytes):
                conn.sock.sendall(memoryview(body)[max(sent - len(reply.head), 0) :])
            elif body is not None:
                conn.sock.sendfile(body, 0, reply.length)
        except OSError:
            return False
    return bool(reply.keep_alive)


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
            "keepalive": KEEPALIVE,
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
