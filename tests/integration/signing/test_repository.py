"""The signed repository through python-tuf's own client (``ngclient.Updater``), in process.

Uploads go through the real endpoint; ngclient fetches through Django's test client, so the
clock can be frozen (time-machine) for expiry, and stored bytes can be altered for attacks.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone
from securesystemslib.signer import CryptoSigner
from tuf.api.exceptions import (
    BadVersionNumberError,
    ExpiredMetadataError,
    LengthOrHashMismatchError,
    RepositoryError,
    UnsignedMetadataError,
)
from tuf.api.metadata import Metadata, SuccinctRoles
from tuf.api.serialization.json import JSONSerializer

from bastion.projects.models import File, RenderedPage
from bastion.signing import queries, services
from bastion.signing.models import CurrentRole, SignedMetadata, SignedPage, SignedProject
from bastion.storage.local import LocalBlobStore
from tests.integration.signing.conftest import ORIGIN, make_updater
from tests.integration.uploads.test_upload_endpoint import upload
from tests.unit.core.builders import make_sdist, make_wheel

pytestmark = pytest.mark.django_db

HTML = "text/html"
JSON = "application/vnd.pypi.simple.v1+json"


def versions() -> dict[str, int]:
    return dict(CurrentRole.objects.values_list("role", "version"))


@pytest.fixture
def wheel(tmp_path):
    return make_wheel(tmp_path, name="demo", version="1.0")


@pytest.fixture
def uploaded(client, repository, alice_token, wheel):
    """The wheel uploaded and signed: by the round the next read of timestamp.json runs."""
    response = upload(client, wheel, alice_token)
    assert response.status_code == 200, response.content
    assert client.get("/tuf/timestamp.json").status_code == 200
    return File.objects.get()


def test_a_new_repository_has_every_role_and_the_bins(repository):
    current = versions()
    assert {"root", "targets", "snapshot", "timestamp"} <= set(current)
    assert len([role for role in current if role.startswith("bins-")]) == 16
    root = json.loads(queries.metadata_body("root", 1))["signed"]
    assert root["consistent_snapshot"] is True
    assert set(root["roles"]) == {"root", "targets", "snapshot", "timestamp"}
    targets = json.loads(queries.metadata_body("targets", 1))["signed"]
    succinct = targets["delegations"]["succinct_roles"]
    assert succinct["bit_length"] == 4 and succinct["name_prefix"] == "bins"


def test_upload_is_signed_by_the_next_timestamp_read_bin_then_snapshot_then_timestamp(
    client, repository, alice_token, wheel
):
    before = versions()
    assert upload(client, wheel, alice_token).status_code == 200
    assert versions() == before  # signed in the next round, not in the upload's transaction
    assert queries.unsigned_changes()
    response = client.get("/tuf/timestamp.json")
    assert response.status_code == 200
    assert not queries.unsigned_changes()
    after = versions()
    assert json.loads(response.content)["signed"]["version"] == after["timestamp"]
    changed = {role for role in after if after[role] != before[role]}
    assert {"snapshot", "timestamp"} <= changed
    assert "root" not in changed and "targets" not in changed
    assert 1 <= len(changed - {"snapshot", "timestamp"}) <= 3  # the file's bin and the pages'
    assert after["snapshot"] == before["snapshot"] + 1
    snapshot = json.loads(queries.metadata_body("snapshot", after["snapshot"]))["signed"]
    for role in changed - {"snapshot", "timestamp"}:
        assert snapshot["meta"][f"{role}.json"]["version"] == after[role]
    timestamp = json.loads(queries.current_body("timestamp"))["signed"]
    assert timestamp["meta"]["snapshot.json"]["version"] == after["snapshot"]


def test_ngclient_downloads_and_verifies_the_wheel_and_both_simple_pages(
    client, uploaded, wheel, tmp_path
):
    updater = make_updater(client, tmp_path)
    updater.refresh()
    info = updater.get_targetinfo(uploaded.storage_key)
    assert info is not None and info.length == uploaded.size
    assert info.hashes == {"sha256": uploaded.sha256, "blake2b-256": uploaded.blake2_256}
    path = updater.download_target(info)
    assert open(path, "rb").read() == wheel.read_bytes()
    # The consistent-snapshot URL <dir>/<hash>.<filename> was the one fetched (P128): the
    # blake2b-256, first of the hashes in python-tuf's sorted output. sha256 is served too.
    directory, _, filename = uploaded.storage_key.rpartition("/")
    assert f"/files/{directory}/{uploaded.blake2_256}.{filename}" in updater._fetcher.requested
    by_sha256 = client.get(f"/files/{directory}/{uploaded.sha256}.{filename}")
    assert by_sha256.status_code == 200 and "immutable" in by_sha256["Cache-Control"]
    for page, accept in (("index.html", HTML), ("index.json", JSON)):
        info = updater.get_targetinfo(f"simple/demo/{page}")
        assert info is not None
        served = client.get("/simple/demo/", HTTP_ACCEPT=accept).content
        info.verify_length_and_hashes(served)  # the bytes /simple/demo/ serves are the signed ones
        signed = updater.download_target(
            info, filepath=str(tmp_path / page), target_base_url=f"{ORIGIN}/"
        )
        assert open(signed, "rb").read() == served


def test_bins_agree_with_python_tuf_for_sample_paths(uploaded):
    targets = json.loads(queries.metadata_body("targets", 1))["signed"]
    succinct = SuccinctRoles.from_dict(dict(targets["delegations"]["succinct_roles"]))
    for target in ["simple/demo/index.html", uploaded.storage_key]:
        role = succinct.get_role_for_target(target)
        body = queries.metadata_body(role, versions()[role])
        assert target in json.loads(body)["signed"]["targets"]


def test_a_distribution_altered_on_disk_is_detected(client, uploaded, tmp_path):
    blob = LocalBlobStore(settings.BASTION.data_dir / "files").local_path(uploaded.storage_key)
    data = blob.read_bytes()
    blob.write_bytes(bytes([data[0] ^ 1]) + data[1:])  # same length, one bit flipped
    updater = make_updater(client, tmp_path)
    updater.refresh()
    info = updater.get_targetinfo(uploaded.storage_key)
    with pytest.raises(LengthOrHashMismatchError):
        updater.download_target(info)


def test_a_simple_page_altered_in_the_database_is_detected(client, uploaded, tmp_path):
    updater = make_updater(client, tmp_path)
    updater.refresh()
    info = updater.get_targetinfo("simple/demo/index.html")
    RenderedPage.objects.filter(project__normalized_name="demo", kind="simple-html").update(
        body=b"<html>evil</html>",
        etag='"evil"',  # a new ETag: not the worker's cached bytes
    )
    served = client.get("/simple/demo/", HTTP_ACCEPT=HTML).content
    assert served == b"<html>evil</html>"
    with pytest.raises(LengthOrHashMismatchError):
        info.verify_length_and_hashes(served)
    SignedPage.objects.filter(path="simple/demo/index.html").update(body=b"<html>evil</html>")
    with pytest.raises(LengthOrHashMismatchError):
        updater.download_target(info, filepath=str(tmp_path / "p"), target_base_url=f"{ORIGIN}/")


def test_an_old_timestamp_or_snapshot_served_again_is_refused(
    client, uploaded, alice_token, tmp_path, monkeypatch
):
    old_timestamp = queries.current_body("timestamp")
    old_snapshot_version = versions()["snapshot"]
    assert (
        upload(client, make_sdist(tmp_path, name="demo", version="1.0"), alice_token).status_code
        == 200
    )
    updater = make_updater(client, tmp_path)
    updater.refresh()  # the client has seen the newer versions
    monkeypatch.setattr(queries, "current_body", lambda role: old_timestamp)
    with pytest.raises(BadVersionNumberError):
        make_updater(client, tmp_path).refresh()
    # Freeze the timestamp: a replayed snapshot behind a fresh timestamp is refused too.
    monkeypatch.undo()
    snapshot_version = versions()["snapshot"]
    SignedMetadata.objects.filter(role="snapshot", version=snapshot_version).update(
        body=queries.metadata_body("snapshot", old_snapshot_version)
    )
    fresh = make_updater(client, tmp_path / "fresh")
    with pytest.raises(RepositoryError):
        fresh.refresh()


def test_expired_metadata_is_refused_and_refresh_renews_it(client, uploaded, tmp_path):
    later = timezone.now() + timedelta(days=2)
    with time_machine.travel(later, tick=False):
        with pytest.raises(ExpiredMetadataError):
            make_updater(client, tmp_path / "a").refresh()
    report = services.refresh(now=later - timedelta(hours=1))
    assert any(role == "timestamp" for role, _v in report.published)
    assert len([r for r, _v in report.published if r.startswith("bins-")]) == 16
    with time_machine.travel(later, tick=False):
        updater = make_updater(client, tmp_path / "b")
        updater.refresh()
        assert updater.get_targetinfo(uploaded.storage_key) is not None


def test_a_bin_signed_by_another_key_is_refused(client, uploaded, tmp_path):
    role = services.bin_for(uploaded.storage_key)
    version = versions()[role]
    row = SignedMetadata.objects.get(role=role, version=version)
    forged = Metadata.from_bytes(bytes(row.body))
    forged.signatures.clear()
    forged.sign(CryptoSigner.generate_ed25519())
    row.body = forged.to_bytes(JSONSerializer(compact=True))
    row.save()
    updater = make_updater(client, tmp_path)
    updater.refresh()
    with pytest.raises(UnsignedMetadataError):
        updater.get_targetinfo(uploaded.storage_key)


def test_deleting_a_file_removes_its_target(client, uploaded, tmp_path):
    key = uploaded.storage_key
    File.objects.filter(pk=uploaded.pk).delete()
    services.targets_changed("demo")
    updater = make_updater(client, tmp_path)
    updater.refresh()
    assert updater.get_targetinfo(key) is None
    assert updater.get_targetinfo("simple/demo/index.html") is not None


def test_a_failed_signing_does_not_fail_the_upload_and_refresh_repairs_it(
    client, repository, alice_token, wheel, tmp_path, monkeypatch
):
    def broken():
        raise RuntimeError("KMS unavailable")

    monkeypatch.setattr(services, "_online_signer", broken)
    assert upload(client, wheel, alice_token).status_code == 200
    assert not SignedProject.objects.filter(project="demo").exists()
    monkeypatch.setattr(services, "_online_signer", lambda: repository.online)
    assert services.refresh().projects == 1
    updater = make_updater(client, tmp_path)
    updater.refresh()
    assert updater.get_targetinfo(File.objects.get().storage_key) is not None


def test_superseded_snapshots_are_collected_after_the_grace_but_roots_kept(
    client, uploaded, repository
):
    assert SignedMetadata.objects.filter(role="snapshot").count() == 2
    later = timezone.now() + timedelta(hours=2)
    services.collect_garbage(now=later)
    assert list(
        SignedMetadata.objects.filter(role="snapshot").values_list("version", flat=True)
    ) == [versions()["snapshot"]]
    services.rotate_root(
        old_root=repository.root, new_root=[CryptoSigner.generate_ed25519()], new_threshold=1
    )
    services.collect_garbage(now=later + timedelta(days=1))
    assert SignedMetadata.objects.filter(role="root").count() == 2


def test_root_rotation_is_followed_by_a_client_trusting_version_1(
    client, uploaded, repository, tmp_path
):
    new_keys = [CryptoSigner.generate_ed25519() for _ in range(3)]
    version = services.rotate_root(old_root=repository.root, new_root=new_keys, new_threshold=2)
    assert version == 2
    updater = make_updater(client, tmp_path)
    updater.refresh()
    assert updater._trusted_set.root.version == 2


def test_online_key_rotation_re_signs_everything_online(
    client, uploaded, repository, tmp_path, monkeypatch
):
    updater = make_updater(client, tmp_path)
    updater.refresh()
    new_online = CryptoSigner.generate_ed25519()
    services.rotate_online_key(
        root_signers=repository.root, targets_signer=repository.targets, new_online=new_online
    )
    monkeypatch.setattr(services, "_online_signer", lambda: new_online)
    updater = make_updater(client, tmp_path)
    updater.refresh()
    assert updater.get_targetinfo(uploaded.storage_key) is not None


def test_metadata_cache_headers(client, repository):
    timestamp = client.get("/tuf/timestamp.json")
    assert timestamp.status_code == 200 and timestamp["Cache-Control"] == "public, max-age=60"
    root = client.get("/tuf/1.root.json")
    assert "immutable" in root["Cache-Control"]
    assert client.get("/tuf/99.root.json").status_code == 404
    body = hashlib.sha256(root.content).hexdigest()
    assert body  # served as stored
