"""A blob that cannot be stored: the upload is a 503 and leaves nothing, although its rows were
written meanwhile (the blob is stored by another thread while the rows are recorded, and the
commit waits for it). The faults are real: a file or a directory already stands where the local
store must write."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client, override_settings

from bastion.audit.models import Event
from bastion.storage import file_key, metadata_key
from bastion.storage.local import LocalBlobStore, PendingWrite
from bastion.uploads import services
from tests.integration.conftest import basic, require_redis, spooled_files, stored_blobs
from tests.integration.uploads.test_upload_endpoint import form_for, snapshot
from tests.unit.core.builders import make_wheel

pytestmark = pytest.mark.django_db

STORAGE_DOWN = "Storage is unavailable; retry later."


def _wheel(tmp_path: Path, name: str, version: str) -> Path:
    folder = tmp_path / f"{name}-{version}"
    folder.mkdir()
    return make_wheel(folder, name=name, version=version)


def _blob_path(wheel: Path) -> Path:
    digest = hashlib.blake2b(wheel.read_bytes(), digest_size=32).hexdigest()
    return LocalBlobStore(settings.BASTION.data_dir / "files").local_path(
        file_key(digest, wheel.name)
    )


def _post(wheel: Path, token: str):
    return Client().post("/legacy/", data=form_for(wheel), HTTP_AUTHORIZATION=basic(token))


def _state() -> dict[str, int]:
    """Rows, and events other than the refusals (which are recorded for every refused upload)."""
    return {**snapshot(), "events": Event.objects.exclude(kind="upload.rejected").count()}


def _assert_refused(response) -> None:
    assert response.status_code == 503, response.content
    assert response.reason_phrase == STORAGE_DOWN
    assert response["X-Bastion-Error"] == "upload.storage-unavailable"
    assert response["Retry-After"]
    refusal = Event.objects.filter(kind="upload.rejected").latest("seq")
    assert refusal.payload["code"] == "upload.storage-unavailable"


@pytest.fixture(params=["overlapped", "stored first"])
def overlap(request, monkeypatch):
    """Both ways a blob is stored: while the rows are recorded (small, local), or before."""
    if request.param == "stored first":
        monkeypatch.setattr(services, "OVERLAP_MAX_SIZE", 0)
    return request.param


@pytest.mark.parametrize("case", ["new project", "new project, exempt", "new version"])
def test_a_blob_that_cannot_be_stored_leaves_no_row_event_or_file(
    case, overlap, alice, alice_token, tmp_path
):
    if case.endswith("exempt"):  # no creation limit to count: the rows are all written first
        alice.upload_limits_exempt = True
        alice.save(update_fields=["upload_limits_exempt"])
    if case == "new version":
        assert _post(_wheel(tmp_path, "demo", "1.0"), alice_token).status_code == 200
    before, blobs_before = _state(), stored_blobs()
    wheel = _wheel(tmp_path, "demo", "2.0")
    obstacle = _blob_path(wheel).parent  # a file where the blob's directory must be made
    obstacle.parent.mkdir(parents=True, exist_ok=True)
    obstacle.write_bytes(b"in the way")

    _assert_refused(_post(wheel, alice_token))

    assert _state() == before
    assert stored_blobs() == sorted([*blobs_before, obstacle])
    assert spooled_files() == []
    obstacle.unlink()
    assert _post(wheel, alice_token).status_code == 200  # and it is stored once it can be
    assert _blob_path(wheel).is_file()


def test_a_wheel_whose_metadata_file_cannot_be_stored_leaves_no_blob(
    overlap, alice, alice_token, tmp_path
):
    before = _state()
    wheel = _wheel(tmp_path, "demo", "1.0")
    blob = _blob_path(wheel)
    obstacle = Path(metadata_key(str(blob)))  # a directory where the .metadata file must go
    obstacle.mkdir(parents=True)

    _assert_refused(_post(wheel, alice_token))

    assert _state() == before
    assert not blob.exists()  # the blob was stored, then removed with the failed upload
    assert stored_blobs() == [] and spooled_files() == []


def test_a_creation_whose_blob_is_not_stored_is_not_counted_in_redis(alice, alice_token, tmp_path):
    """Counters in Redis are not rolled back with the transaction: the creation is counted only
    once its blob is stored. Limit 1: the retry after the failure is the first creation."""
    import redis

    require_redis()
    counters = redis.Redis(host="127.0.0.1", port=6379, db=14)
    counters.flushdb()
    limited = dataclasses.replace(
        settings.BASTION, redis_url="redis://127.0.0.1:6379/14", project_create_limit="1/hour"
    )
    try:
        with override_settings(BASTION=limited):
            wheel = _wheel(tmp_path, "demo", "1.0")
            obstacle = _blob_path(wheel).parent
            obstacle.parent.mkdir(parents=True, exist_ok=True)
            obstacle.write_bytes(b"in the way")
            _assert_refused(_post(wheel, alice_token))
            obstacle.unlink()
            assert _post(wheel, alice_token).status_code == 200
            refused = _post(_wheel(tmp_path, "other", "1.0"), alice_token)
            assert refused.status_code == 429, refused.content
            assert refused["X-Bastion-Error"] == "ratelimit.project-create"
    finally:
        counters.flushdb()


@pytest.mark.parametrize("size_limit, synced_under_lock", [(0, False), (1024 * 1024, True)])
def test_only_a_small_local_blob_is_made_durable_while_the_index_lock_is_held(
    size_limit, synced_under_lock, alice, alice_token, tmp_path, monkeypatch
):
    """The index lock serialises every change on every node: a large blob (or a put to object
    storage) is stored and made durable before it is taken, never while it is held. A small
    one on local disk has its last slow step, the metadata file's fsync, made while the rows are
    recorded under the lock: there the fsync is held back until the lock is taken, so the
    overlap is seen every time (and the metadata file is in place before the commit)."""
    import threading

    monkeypatch.setattr(services, "OVERLAP_MAX_SIZE", size_limit)
    wheel = _wheel(tmp_path, "demo", "1.0")
    metadata = Path(f"{_blob_path(wheel)}.metadata")
    locked = threading.Event()
    seen: list[bool] = []
    real_lock, real_sync = services.lock_index, PendingWrite.sync

    def lock_index():
        seen.append(metadata.exists())
        locked.set()
        return real_lock()

    def sync(self: PendingWrite) -> None:
        if synced_under_lock:
            assert locked.wait(timeout=30)  # the lock is taken while the fsync waits
        real_sync(self)

    monkeypatch.setattr(services, "lock_index", lock_index)
    monkeypatch.setattr(PendingWrite, "sync", sync)

    assert _post(wheel, alice_token).status_code == 200
    assert seen == [not synced_under_lock]
    assert _blob_path(wheel).is_file()
    assert metadata.is_file()
