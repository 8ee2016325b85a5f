"""BASTION_REDIS_URL selects Django's Redis cache (shared rate limits across nodes): it works."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from bastion.config import load_config


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def test_redis_url_gives_a_working_shared_cache(tmp_path):
    if not _redis_up():
        if os.environ.get("CI") == "true":
            pytest.fail("Redis is not reachable at 127.0.0.1:6379; CI requires it")
        pytest.skip("Redis is not reachable at 127.0.0.1:6379")
    from django.core.cache.backends.redis import RedisCache

    config = load_config(
        {"BASTION_DATA_DIR": str(tmp_path), "BASTION_REDIS_URL": "redis://127.0.0.1:6379/0"}
    )
    assert config.redis_url == "redis://127.0.0.1:6379/0"
    first = RedisCache(config.redis_url, {"KEY_PREFIX": "bastion-test"})
    second = RedisCache(config.redis_url, {"KEY_PREFIX": "bastion-test"})  # another node
    key = f"probe-{uuid.uuid4().hex}"
    first.set(key, {"attempts": 3}, timeout=30)
    assert second.get(key) == {"attempts": 3}
    assert second.add(key + "-n", 0, timeout=30)
    assert first.incr(key + "-n") == 1 and second.get(key + "-n") == 1
    first.delete(key)
    first.delete(key + "-n")
    assert second.get(key) is None
