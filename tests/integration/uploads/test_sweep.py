"""``bastion storage sweep``: blobs no file row names (left by a crash between storing a blob
and committing its row) are removed once old enough; referenced blobs never are."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from bastion import cli
from bastion.actors import Actor
from bastion.audit.models import Event
from bastion.projects.models import File
from bastion.storage import StorageError, blob_store, file_key, metadata_key
from bastion.uploads.sweep import sweep_unreferenced_blobs
from tests.integration.uploads.test_upload_endpoint import upload
from tests.unit.core.builders import make_wheel

pytestmark = pytest.mark.django_db

OPERATOR = Actor.operator()
ORPHAN = file_key("ab" * 32, "orphan-1.0-py3-none-any.whl")


def test_only_old_unreferenced_blobs_are_removed(client, alice, alice_token, tmp_path):
    assert upload(client, make_wheel(tmp_path, name="kept"), alice_token).status_code == 200
    (kept,) = File.objects.values_list("storage_key", flat=True)
    store = blob_store()
    store.put_bytes(ORPHAN, b"left by a killed upload")
    store.put_bytes(metadata_key(ORPHAN), b"Metadata-Version: 2.1\n")
    later = timezone.now() + timedelta(hours=2)

    young = sweep_unreferenced_blobs(
        actor=OPERATOR, store=store, older_than=timedelta(hours=1), now=timezone.now()
    )
    assert young.removed == ()  # an upload in flight has a young blob and no row yet
    assert not Event.objects.filter(kind="storage.blob.removed").exists()

    report = sweep_unreferenced_blobs(
        actor=OPERATOR, store=store, older_than=timedelta(hours=1), now=later
    )
    assert sorted(report.removed) == sorted([ORPHAN, metadata_key(ORPHAN)])
    assert report.examined == 4
    assert not store.exists(ORPHAN) and not store.exists(metadata_key(ORPHAN))
    assert store.exists(kept) and store.exists(metadata_key(kept))
    removed = Event.objects.filter(kind="storage.blob.removed").order_by("seq")
    assert sorted(e.payload["key"] for e in removed) == sorted(report.removed)
    assert {e.credential for e in removed} == {"cli"}


def test_a_removal_that_fails_leaves_no_event(tmp_path):
    class Unremovable:
        """The store as it is when its back end refuses deletes (a fault not caused for real)."""

        def __init__(self, inner):
            self.inner = inner

        def entries(self):
            return self.inner.entries()

        def delete(self, key):
            raise StorageError(f"could not remove {key}")

    store = blob_store()
    store.put_bytes(ORPHAN, b"left by a killed upload")
    later = timezone.now() + timedelta(hours=2)
    with pytest.raises(StorageError):
        sweep_unreferenced_blobs(
            actor=OPERATOR, store=Unremovable(store), older_than=timedelta(hours=1), now=later
        )
    assert not Event.objects.filter(kind="storage.blob.removed").exists()
    assert store.exists(ORPHAN)


def test_the_command_prints_one_line(capsys, monkeypatch):
    store = blob_store()
    store.put_bytes(ORPHAN, b"orphan")
    assert cli.main(["storage", "sweep", "--older-than", "1h"]) == 0
    assert capsys.readouterr().out == "removed 0 unreferenced blob(s) of 1\n"
    assert store.exists(ORPHAN)
    later = timezone.now() + timedelta(hours=2)
    monkeypatch.setattr("django.utils.timezone.now", lambda: later)
    assert cli.main(["storage", "sweep"]) == 0
    assert capsys.readouterr().out == "removed 1 unreferenced blob(s) of 1\n"
    assert not store.exists(ORPHAN)
    assert settings.BASTION.storage_url.startswith("file:")
