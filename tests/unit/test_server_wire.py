"""The worker's poller-thread answers (bastion.server, ``_answer_now``), on real sockets.

The page look-up is a stub here (``bastion.index.wire`` is tested against Django in
tests/integration/index/test_wire.py and on a live server in tests/e2e/test_wire.py); what is
tested is the connection handling: an answer the socket takes at once stays on the poller,
a larger one is finished by a pool thread and comes back through gunicorn's finish_request,
a request the wire declines is given back whole to gunicorn's parser.
"""

from __future__ import annotations

import logging
import selectors
import socket
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest
from gunicorn.config import Config
from gunicorn.workers.gthread import PollableMethodQueue, TConn

from bastion.index.wire import Reply
from bastion.server import ReadableFirstThreadWorker

REQUEST = b"GET /simple/x/ HTTP/1.1\r\nHost: h\r\n\r\n"


class StubWire:
    read_size = 8193

    def __init__(self, reply: Reply | None) -> None:
        self.answer = reply
        self.seen: list[bytes] = []

    def reply(self, data: bytes, *, may_keep_alive: bool) -> Reply | None:
        self.seen.append(data)
        return self.answer


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    client.settimeout(10)
    yield server, client
    server.close()
    client.close()


def _worker(wire: StubWire) -> ReadableFirstThreadWorker:
    worker = ReadableFirstThreadWorker.__new__(ReadableFirstThreadWorker)
    worker.cfg = Config()
    worker.log = logging.getLogger("test.server")
    worker.alive = True
    worker.wire = wire
    worker.poller = selectors.DefaultSelector()
    worker.keepalived_conns = deque()
    worker.pending_conns = deque()
    worker.nr_conns = 0
    worker.max_keepalived = 100
    worker.tpool = ThreadPoolExecutor(2)
    worker.method_queue = PollableMethodQueue()
    worker.method_queue.init()
    return worker


def _kept_alive(worker: ReadableFirstThreadWorker, server: socket.socket) -> TConn:
    """A connection waiting on the poller for its next request, as gunicorn leaves it."""
    conn = TConn(worker.cfg, server, ("127.0.0.1", 1), ("127.0.0.1", 2))
    conn.init()
    conn.sock.setblocking(False)
    conn.set_timeout()
    worker.nr_conns += 1
    worker.keepalived_conns.append(conn)
    worker.poller.register(
        server, selectors.EVENT_READ, partial(worker.on_client_socket_readable, conn)
    )
    return conn


def _read(client: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = client.recv(1 << 20)
        assert chunk, data[:100]
        data += chunk
    return data


def _finish(worker: ReadableFirstThreadWorker) -> None:
    """Run what pool threads handed back to the poller's thread (gunicorn's finish_request)."""
    worker.tpool.shutdown(wait=True)
    worker.method_queue.run_callbacks(None)


def test_an_answer_the_socket_takes_at_once_stays_on_the_poller(pair) -> None:
    server, client = pair
    reply = Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n", b"body", 4, True)
    worker = _worker(StubWire(reply))
    conn = _kept_alive(worker, server)
    client.sendall(REQUEST)

    worker.on_client_socket_readable(conn, server)

    assert worker.wire.seen == [REQUEST]
    assert _read(client, len(reply.head) + 4) == reply.head + b"body"
    assert list(worker.keepalived_conns) == [conn] and worker.nr_conns == 1
    key = worker.poller.get_key(server)
    assert key.data.func == worker.on_client_socket_readable  # waits for the next request
    assert worker.tpool._work_queue.empty()


def test_a_new_connection_moves_from_pending_to_kept_alive(pair) -> None:
    server, client = pair
    reply = Reply(b"HTTP/1.1 304 Not Modified\r\n\r\n", None, 0, True)
    worker = _worker(StubWire(reply))
    conn = TConn(worker.cfg, server, ("127.0.0.1", 1), ("127.0.0.1", 2))
    worker.nr_conns = 1
    worker.pending_conns.append(conn)
    worker.poller.register(server, selectors.EVENT_READ, "pending")
    client.sendall(REQUEST)

    worker.on_pending_socket_readable(conn, server)

    assert _read(client, len(reply.head)) == reply.head
    assert not worker.pending_conns and list(worker.keepalived_conns) == [conn]
    assert worker.poller.get_key(server).data.func == worker.on_client_socket_readable


@pytest.mark.parametrize("keep_alive", [True, False])
def test_a_larger_answer_is_finished_by_a_pool_thread(pair, keep_alive) -> None:
    server, client = pair
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    body = bytes(range(256)) * 8192  # 2 MiB: far more than the socket takes at once
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
    worker = _worker(StubWire(Reply(head, body, len(body), keep_alive)))
    conn = _kept_alive(worker, server)
    client.sendall(REQUEST)

    worker.on_client_socket_readable(conn, server)

    with pytest.raises(KeyError):  # off the poller while the thread sends
        worker.poller.get_key(server)
    assert not worker.keepalived_conns
    assert _read(client, len(head) + len(body)) == head + body
    _finish(worker)
    if keep_alive:  # back on the poller, waiting for the next request
        assert list(worker.keepalived_conns) == [conn]
        assert worker.poller.get_key(server).data.func == worker.on_client_socket_readable
        assert worker.nr_conns == 1
    else:  # closed gracefully by finish_request
        assert not worker.keepalived_conns and worker.nr_conns == 0
        assert client.recv(1) == b""


def test_a_declined_request_is_given_back_whole_to_gunicorns_parser(pair) -> None:
    server, client = pair
    worker = _worker(StubWire(None))
    conn = _kept_alive(worker, server)
    client.sendall(REQUEST)

    assert worker._answer_now(conn, worker.keepalived_conns) is False

    assert conn.parser.unreader.buf.getvalue() == REQUEST
    assert list(worker.keepalived_conns) == [conn]  # gunicorn's own path takes it from here


def test_a_connection_the_client_closed_is_closed(pair) -> None:
    server, client = pair
    worker = _worker(StubWire(None))
    conn = _kept_alive(worker, server)
    client.shutdown(socket.SHUT_WR)

    worker.on_client_socket_readable(conn, server)

    assert worker.wire.seen == [] and not worker.keepalived_conns and worker.nr_conns == 0
    assert server.fileno() == -1
