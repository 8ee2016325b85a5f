"""A small file for the local store is prepared while the upload is checked: its key's directory
is made and its spool file made durable on a writer thread, alongside the validation; it is
stored only once accepted, and a refused one leaves no directory behind."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from django.conf import settings

from bastion.uploads import services
from tests.integration.uploads.test_storage_failures import _blob_path, _post, _wheel
from tests.unit.core.builders import make_wheel

pytestmark = pytest.mark.django_db


def _directories() -> list[Path]:
    root = settings.BASTION.data_dir / "files"
    return sorted(p for p in root.rglob("*") if p.is_dir()) if root.exists() else []


def test_the_directory_and_the_sync_happen_while_the_file_is_validated(
    alice, alice_token, tmp_path, monkeypatch
):
    """The validation is held until the writer thread has made the key's directory and synced
    the spool file: were they done after it (or on the request's thread), it would wait in
    vain and the upload would fail."""
    wheel = _wheel(tmp_path, "demo", "1.0")
    synced = threading.Event()
    real_sync, real_validate = services.sync_file, services.validate_distribution

    def sync_file(path: Path) -> None:
        real_sync(path)
        synced.set()

    def validate_distribution(*args, **kwargs):
        assert synced.wait(timeout=10), "the spool file was not synced during the validation"
        assert _blob_path(wheel).parent.is_dir()
        assert not _blob_path(wheel).exists()  # nothing is stored before the file is valid
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(services, "sync_file", sync_file)
    monkeypatch.setattr(services, "validate_distribution", validate_distribution)
    assert _post(wheel, alice_token).status_code == 200
    assert _blob_path(wheel).is_file()
    assert Path(str(_blob_path(wheel)) + ".metadata").is_file()


def test_a_refused_file_leaves_no_directory(alice, alice_token, tmp_path):
    assert _post(_wheel(tmp_path, "demo", "1.0"), alice_token).status_code == 200
    before = _directories()
    # The same name and version with other bytes: refused, after (or while) the writer thread
    # made the directory of the new content's key.
    folder = tmp_path / "other-bytes"
    folder.mkdir()
    clash = make_wheel(folder, name="demo", version="1.0", extra_members={"demo/more.py": b"1\n"})
    refused = _post(clash, alice_token)
    assert refused.status_code == 400, refused.content
    assert refused["X-Bastion-Error"] == "upload.file-exists"
    assert _directories() == before
    assert not _blob_path(clash).parent.exists()


def test_an_invalid_file_leaves_no_directory(alice, alice_token, tmp_path):
    folder = tmp_path / "invalid"
    folder.mkdir()
    wheel = make_wheel(folder, name="demo", version="1.0", omit=["demo-1.0.dist-info/WHEEL"])
    refused = _post(wheel, alice_token)
    assert refused.status_code == 400, refused.content
    assert _directories() == []


def test_a_file_refused_before_the_writer_starts_costs_no_fsync(
    alice, alice_token, tmp_path, monkeypatch
):
    """The writer thread is held until the verdict: an identical re-upload (answered as a
    no-op before validation) is then refused already, and the answer waits for no fsync."""
    wheel = _wheel(tmp_path, "demo", "1.0")
    synced: list[Path] = []
    real_sync, real_run = services.sync_file, services._EarlyStore._run

    def sync_file(path: Path) -> None:
        synced.append(path)
        real_sync(path)

    def run(self, store, request):
        assert self._verdict.wait(timeout=30)
        real_run(self, store, request)

    monkeypatch.setattr(services, "sync_file", sync_file)
    monkeypatch.setattr(services._EarlyStore, "_run", run)
    assert _post(wheel, alice_token).status_code == 200
    assert len(synced) == 1  # accepted: the spool file was made durable
    assert _post(wheel, alice_token).status_code == 200  # the same file: a no-op
    assert len(synced) == 1
    assert _blob_path(wheel).is_file()
