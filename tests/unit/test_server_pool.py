"""The request threads' pool (bastion.server.LastIdleFirstPool): the thread idle the shortest
time takes the next request, so one client's requests in a row run on one warm thread (its own
SQLite connection keeps its page cache), and up to ``max_workers`` run at once when they
overlap."""

from __future__ import annotations

import threading

import pytest

from bastion.server import LastIdleFirstPool, ReadableFirstThreadWorker


def _thread_name() -> str:
    return threading.current_thread().name


def test_requests_in_a_row_run_on_the_same_thread() -> None:
    pool = LastIdleFirstPool(4)
    try:
        # Two threads exist (two tasks overlapped once) ...
        release = threading.Event()
        first = pool.submit(release.wait, 10)
        second = pool.submit(_thread_name)
        assert second.result(10).startswith("bastion-request_")
        release.set()
        first.result(10)
        # ... and each task in a row is taken by the thread idle the shortest time: one only
        # (the stdlib's pool alternated between both).
        names = {pool.submit(_thread_name).result(10) for _ in range(20)}
        assert len(names) == 1
    finally:
        pool.shutdown()


def test_overlapping_tasks_run_at_once_up_to_max_workers() -> None:
    pool = LastIdleFirstPool(3)
    try:
        started = threading.Semaphore(0)
        release = threading.Event()

        def hold() -> str:
            started.release()
            release.wait(10)
            return _thread_name()

        held = [pool.submit(hold) for _ in range(4)]
        for _ in range(3):
            assert started.acquire(timeout=10)  # three run at once ...
        assert not started.acquire(timeout=0.3)  # ... the fourth waits for a free thread
        release.set()
        names = [future.result(10) for future in held]
        assert len(set(names)) == 3
    finally:
        pool.shutdown()


def test_results_exceptions_callbacks_and_shutdown() -> None:
    pool = LastIdleFirstPool(2)
    done: list[int] = []
    future = pool.submit(lambda a, b=0: a + b, 2, b=3)
    future.add_done_callback(lambda f: done.append(f.result()))
    assert future.result(10) == 5
    failed = pool.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failed.result(10)
    assert pool.submit(_thread_name).result(10)  # the pool survives a task's exception
    pool.shutdown(wait=True)
    assert done == [5]
    assert not any(t.is_alive() for t in pool._threads)
    with pytest.raises(RuntimeError):
        pool.submit(_thread_name)
    with pytest.raises(ValueError):
        LastIdleFirstPool(0)


def test_gunicorns_worker_uses_it() -> None:
    worker = ReadableFirstThreadWorker.__new__(ReadableFirstThreadWorker)
    worker.cfg = type("Cfg", (), {"threads": 4})()
    pool = worker.get_thread_pool()
    assert isinstance(pool, LastIdleFirstPool) and pool._max_workers == 4
    pool.shutdown()
