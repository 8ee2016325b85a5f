"""BASTION_REDIS_URL selects Django's Redis cache (shared rate limits across nodes): it works."""

from __future__ import annotations

import os
import uuid

from bastion.config import load_config
from tests.integration.conftest import require_redis


def test_redis_url_gives_a_working_shared_cache(tmp_path):
    require_redis()
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


def test_a_worker_without_redis_never_loads_redis_py(tmp_path):
    """~5 MB per worker: without BASTION_REDIS_URL the application (what a gunicorn worker
    loads) imports no part of redis-py, yet a dead Redis still counts as an outage where one
    is configured (tests/integration/uploads/test_limits.py)."""
    import subprocess
    import sys

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BASTION_", "DJANGO_"))
    }
    env.update(BASTION_DATA_DIR=str(tmp_path), BASTION_BASE_URL="http://127.0.0.1:8080")
    probe = "import sys, bastion.wsgi; print(sorted(m for m in sys.modules if 'redis' in m))"
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
