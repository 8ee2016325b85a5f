"""``bastion tuf init`` / ``rotate-online-key`` with an online key that already exists (a KMS, HSM
or Vault key in production; here a ``file2:`` signer URI, the same code path), in-process."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)
from securesystemslib.signer import CryptoSigner, SSlibKey

from bastion.cli import main
from bastion.signing import services
from bastion.signing.models import CurrentRole
from bastion.signing.queries import metadata_body

pytestmark = pytest.mark.django_db


def _existing_key(where: Path, name: str) -> tuple[str, Path, str]:
    """A private key file (what the URI points at), its public PEM, and its keyid."""
    signer = CryptoSigner.generate_ed25519()
    private = where / f"{name}.pem"
    private.write_bytes(signer.private_bytes)
    public = where / f"{name}.pub.pem"
    crypto_public = load_pem_private_key(signer.private_bytes, None).public_key()
    public.write_bytes(crypto_public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return f"file2:{private}", public, SSlibKey.from_crypto(crypto_public).keyid


def _root() -> dict:
    version = CurrentRole.objects.get(role="root").version
    return json.loads(metadata_body("root", version))["signed"]


def _online_keyids() -> set[str]:
    roles = _root()["roles"]
    return set(roles["timestamp"]["keyids"]) | set(roles["snapshot"]["keyids"])


def test_init_registers_an_existing_online_key_and_writes_none(tmp_path, capsys, settings):
    uri, public, keyid = _existing_key(tmp_path, "kms-stand-in")
    keys_dir = tmp_path / "offline"
    code = main(
        ["tuf", "init", "--keys-dir", str(keys_dir), "--root-keys", "1", "--root-threshold", "1",
         "--bins", "16", "--online-key", uri, "--online-public-key", str(public)]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert _online_keyids() == {keyid}
    assert sorted(p.name for p in keys_dir.iterdir()) == ["root-1.pem", "targets.pem"]
    assert f"BASTION_TUF_ONLINE_KEY={uri}" in err
    # The nodes sign with it from then on: an update publishes a timestamp under that key.
    settings.BASTION = replace(
        settings.BASTION, tuf=replace(settings.BASTION.tuf, online_key=uri)
    )
    before = CurrentRole.objects.get(role="timestamp").version
    services.refresh(now=services.timezone.now() + services.timedelta(hours=20))
    timestamp = json.loads(
        metadata_body("timestamp", CurrentRole.objects.get(role="timestamp").version)
    )
    assert timestamp["signed"]["version"] > before
    assert [s["keyid"] for s in timestamp["signatures"]] == [keyid]


def test_init_refuses_a_public_key_the_uri_does_not_sign_for(tmp_path, capsys):
    uri, _public, _keyid = _existing_key(tmp_path, "one")
    _other_uri, other_public, _ = _existing_key(tmp_path, "two")
    keys_dir = tmp_path / "offline"
    code = main(
        ["tuf", "init", "--keys-dir", str(keys_dir), "--root-keys", "1", "--root-threshold", "1",
         "--online-key", uri, "--online-public-key", str(other_public)]
    )
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1, err
    assert "does not sign for" in err or "does not match" in err, err
    assert not services.initialized()
    assert not keys_dir.exists() or not any(keys_dir.iterdir())


def test_init_wants_both_options(tmp_path, capsys):
    uri, _public, _ = _existing_key(tmp_path, "one")
    code = main(["tuf", "init", "--keys-dir", str(tmp_path / "k"), "--online-key", uri])
    assert code != 0 and "go together" in capsys.readouterr().err
    assert not services.initialized()


def test_rotate_online_key_to_an_existing_key(tmp_path, capsys):
    keys_dir = tmp_path / "offline"
    assert main(["tuf", "init", "--keys-dir", str(keys_dir), "--root-keys", "1",
                 "--root-threshold", "1", "--bins", "16"]) == 0
    old = _online_keyids()
    uri, public, keyid = _existing_key(tmp_path, "next")
    code = main(["tuf", "rotate-online-key", "--keys-dir", str(keys_dir), "--online-key", uri,
                 "--online-public-key", str(public)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert _online_keyids() == {keyid} and not old & {keyid}
    assert _root()["version"] == 2
    code = main(["tuf", "rotate-online-key", "--keys-dir", str(keys_dir)])
    assert code != 0 and "either --new-key" in capsys.readouterr().err
