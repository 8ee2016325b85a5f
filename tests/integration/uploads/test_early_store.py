"""A small file for the local store is prepared while the upload is checked: a writer thread
makes its key's directory and the spool file's fsync alongside the validation, then the metadata
file's fsync while the rows are recorded. It is stored only once accepted, and a refused or
failed one leaves no directory and no temporary file behind."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest
from django.conf import settings

from bastion.storage.local import LocalBlobStore
from bastion.uploads import services
from tests.integration.conftest import stored_blobs
from tests.integration.uploads.test_storage_failures import (
    _assert_refused,
    _blob_path,
    _post,
    _state,
    _wheel,
)
from tests.unit.core.builders import make_wheel

pytestmark = pytest.mark.django_db

WRITER = "bastion-store"  # the writer threads' name prefix (services._writer)


def _directories() -> list[Path]:
    root = settings.BASTION.data_dir / "files"
    return sorted(p for p in root.rglob("*") if p.is_dir()) if root.exists() else []


@pytest.fixture
def fsyncs(monkeypatch) -> list[tuple[str, int]]:
    """Every ``os.fsync`` from now on, as (thread name, inode), made for real."""
    seen: list[tuple[str, int]] = []
    real = os.fsync

    def fsync(descriptor: int) -> None:
        seen.append((threading.current_thread().name, os.fstat(descriptor).st_ino))
        real(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


@pytest.fixture
def refused_after_the_directory(monkeypatch, directory_made) -> None:
    """An upload's verdict waits until the writer made its key's directory, so a refusal
    always finds one to remove."""
    real_close = services._EarlyStore.close

    def close(self) -> None:
        assert directory_made.wait(timeout=10), "the writer made no directory"
        real_close(self)

    monkeypatch.setattr(services._EarlyStore, "close", close)


@pytest.fixture
def directory_made(monkeypatch) -> threading.Event:
    """Set once the writer made (or found) a key's directory."""
    made = threading.Event()
    real = LocalBlobStore.make_directory

    def make_directory(self: LocalBlobStore, key: str) -> list[Path]:
        try:
            return real(self, key)
        finally:
            made.set()

    monkeypatch.setattr(LocalBlobStore, "make_directory", make_directory)
    return made


def test_the_slow_steps_happen_on_the_writer_alongside_the_validation(
    alice, alice_token, tmp_path, monkeypatch, fsyncs, directory_made
):
    """The validation is held until the writer thread has made the key's directory and synced
    the spool file: were they done after it, or on the request's thread, it would wait in vain
    and the upload would fail. The metadata file is synced on the writer too."""
    wheel = _wheel(tmp_path, "demo", "1.0")
    spool_synced = threading.Event()
    real_fsync, real_validate = os.fsync, services.validate_distribution

    def fsync(descriptor: int) -> None:
        real_fsync(descriptor)
        if threading.current_thread().name.startswith(WRITER):
            spool_synced.set()

    def validate_distribution(path, *args, **kwargs):
        assert directory_made.wait(timeout=10), "the directory was not made meanwhile"
        assert spool_synced.wait(timeout=10), "the spool file was not synced meanwhile"
        assert fsyncs == [(fsyncs[0][0], os.stat(path).st_ino)]  # the spool file, no other
        assert _blob_path(wheel).parent.is_dir()
        assert not _blob_path(wheel).exists()  # nothing is stored before the file is valid
        return real_validate(path, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(services, "validate_distribution", validate_distribution)
    assert _post(wheel, alice_token).status_code == 200
    blob, metadata = _blob_path(wheel), Path(f"{_blob_path(wheel)}.metadata")
    # The blob is a second name of the spool file, synced before the commit; then the metadata.
    assert [inode for _, inode in fsyncs] == [blob.stat().st_ino, metadata.stat().st_ino]
    assert all(thread.startswith(WRITER) for thread, _ in fsyncs)
    assert sorted(p.name for p in blob.parent.iterdir()) == [blob.name, metadata.name]


def test_a_stored_file_costs_no_attempt_to_remove_its_directory(
    alice, alice_token, tmp_path, monkeypatch
):
    # Once its rows committed, the file's directory holds it for good: trying to remove it
    # (refused, not empty) cost every upload a system call.
    attempts: list[list[Path]] = []
    real = LocalBlobStore.remove_directories

    def remove_directories(self: LocalBlobStore, made: list[Path]) -> None:
        attempts.append(list(made))
        real(self, made)

    monkeypatch.setattr(LocalBlobStore, "remove_directories", remove_directories)
    wheel = _wheel(tmp_path, "demo", "1.0")
    assert _post(wheel, alice_token).status_code == 200
    assert attempts == []
    assert _blob_path(wheel).is_file()
    # A refusal still cleans up after itself.
    clash = tmp_path / "clash"
    clash.mkdir()
    refused = make_wheel(clash, name="demo", version="1.0", extra_members={"demo/x.py": b"2\n"})
    assert _post(refused, alice_token).status_code == 400
    assert len(attempts) == 1


def test_a_refused_file_leaves_no_directory(
    alice, alice_token, tmp_path, directory_made, refused_after_the_directory
):
    assert _post(_wheel(tmp_path, "demo", "1.0"), alice_token).status_code == 200
    directory_made.clear()
    before, blobs = _directories(), stored_blobs()
    # The same name and version with other bytes: refused, after the writer thread made the
    # directory of the new content's key.
    folder = tmp_path / "other-bytes"
    folder.mkdir()
    clash = make_wheel(folder, name="demo", version="1.0", extra_members={"demo/more.py": b"1\n"})
    refused = _post(clash, alice_token)
    assert refused.status_code == 400, refused.content
    assert refused["X-Bastion-Error"] == "upload.file-exists"
    assert directory_made.is_set()
    assert _directories() == before
    assert stored_blobs() == blobs
    assert not _blob_path(clash).parent.exists()


def test_an_invalid_file_leaves_no_directory(
    alice, alice_token, tmp_path, directory_made, refused_after_the_directory
):
    folder = tmp_path / "invalid"
    folder.mkdir()
    wheel = make_wheel(folder, name="demo", version="1.0", omit=["demo-1.0.dist-info/WHEEL"])
    refused = _post(wheel, alice_token)
    assert refused.status_code == 400, refused.content
    assert directory_made.is_set()
    assert _directories() == []


def test_a_file_refused_before_the_writer_starts_costs_no_fsync(
    alice, alice_token, tmp_path, monkeypatch, fsyncs
):
    """The writer thread is held until the verdict: an identical re-upload (answered as a
    no-op before validation) is then refused already, and the answer waits for no fsync."""
    wheel = _wheel(tmp_path, "demo", "1.0")
    real_run = services._EarlyStore._run

    def run(self, spool):
        assert self._verdict.wait(timeout=30)
        real_run(self, spool)

    monkeypatch.setattr(services._EarlyStore, "_run", run)
    assert _post(wheel, alice_token).status_code == 200
    assert len(fsyncs) == 2  # accepted: the spool file and the metadata file made durable
    before = _directories()
    assert _post(wheel, alice_token).status_code == 200  # the same file: a no-op
    assert len(fsyncs) == 2
    assert _directories() == before
    assert _blob_path(wheel).is_file()


@pytest.mark.parametrize("failing", ["the spool file", "the metadata file"])
def test_an_fsync_failing_on_the_writer_is_a_503_leaving_nothing(
    failing, alice, alice_token, tmp_path, monkeypatch, directory_made
):
    """A disk that fails an fsync cannot be made for a test: this fault is injected (EIO from
    the writer's first or second fsync). The upload is refused as storage unavailable, with
    no row, event, blob, temporary file or directory left."""
    assert _post(_wheel(tmp_path, "demo", "1.0"), alice_token).status_code == 200
    directory_made.clear()
    before, blobs, directories = _state(), stored_blobs(), _directories()
    real_fsync, real_validate = os.fsync, services.validate_distribution
    calls: list[int] = []

    def fsync(descriptor: int) -> None:
        if threading.current_thread().name.startswith(WRITER):
            calls.append(descriptor)
            if len(calls) == (1 if failing == "the spool file" else 2):
                raise OSError(errno.EIO, "Input/output error")
        real_fsync(descriptor)

    def validate_distribution(*args, **kwargs):
        # The directory is the writer's (made ahead), so the failure must remove it.
        assert directory_made.wait(timeout=10)
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(services, "validate_distribution", validate_distribution)
    wheel = _wheel(tmp_path, "demo", "2.0")
    _assert_refused(_post(wheel, alice_token))
    assert len(calls) == (1 if failing == "the spool file" else 2)
    assert _state() == before
    assert stored_blobs() == blobs
    assert _directories() == directories
