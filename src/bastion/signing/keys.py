"""Signing keys: files written 0600 into a key directory, or any securesystemslib signer URI.

Layout of a key directory (docs/adr/0005-tuf-key-layout.md):

- ``root-1.pem`` ... ``root-N.pem`` — offline root keys (a threshold of them signs each root);
- ``targets.pem`` — the offline targets key (signs ``targets``, which delegates to the bins);
- ``online.pem`` — the online key (``timestamp``, ``snapshot`` and every ``bins-*``).

All PEM, PKCS#8, Ed25519. Private keys are never logged, served or stored in the database: the
database holds only the public keys, inside the signed root and targets metadata.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from securesystemslib.signer import CryptoSigner, Key, Signer, SSlibKey

from bastion.signing.errors import KeyProblem

ROOT_PREFIX = "root-"
TARGETS_FILE = "targets.pem"
ONLINE_FILE = "online.pem"


@dataclass(frozen=True)
class OfflineKeys:
    """What a key directory holds: root signers (maybe fewer than all), targets, online."""

    root: tuple[Signer, ...]
    targets: Signer | None
    online: Signer | None


def _write_private(path: Path, signer: CryptoSigner) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(signer.private_bytes)


def load_file_signer(path: Path) -> CryptoSigner:
    """A signer for a PEM private key file (its public key derived from it)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyProblem(f"cannot read the key {path}: {exc.strerror}") from None
    try:
        return CryptoSigner(load_pem_private_key(data, None))
    except (ValueError, TypeError) as exc:
        raise KeyProblem(f"{path} is not an unencrypted PEM private key ({exc})") from None


def generate_keys(directory: Path, *, root_keys: int, online: bool = True) -> OfflineKeys:
    """Create ``root_keys`` root keys, a targets key and (unless ``online`` is False) an online
    key in ``directory`` (created 0700). Refuses to overwrite any key file."""
    if root_keys < 1:
        raise KeyProblem("at least one root key is needed")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    names = [f"{ROOT_PREFIX}{i}.pem" for i in range(1, root_keys + 1)] + [TARGETS_FILE]
    if online:
        names.append(ONLINE_FILE)
    existing = [name for name in names if (directory / name).exists()]
    if existing:
        raise KeyProblem(f"{directory} already holds {', '.join(existing)}; use an empty directory")
    signers = {name: CryptoSigner.generate_ed25519() for name in names}
    for name, signer in signers.items():
        _write_private(directory / name, signer)
    return OfflineKeys(
        root=tuple(signers[name] for name in names if name.startswith(ROOT_PREFIX)),
        targets=signers[TARGETS_FILE],
        online=signers.get(ONLINE_FILE),
    )


def ensure_development_keys(directory: Path) -> OfflineKeys:
    """The embedded default's keys: read them, or create one of each on the first start."""
    if not any(directory.glob(f"{ROOT_PREFIX}*.pem")):
        return generate_keys(directory, root_keys=1)
    return read_keys(directory)


def read_keys(directory: Path) -> OfflineKeys:
    """Whatever keys ``directory`` holds (an operator's offline directory, or the dev one)."""
    if not directory.is_dir():
        raise KeyProblem(f"no key directory {directory}")
    root = tuple(load_file_signer(path) for path in sorted(directory.glob(f"{ROOT_PREFIX}*.pem")))
    targets = directory / TARGETS_FILE
    online = directory / ONLINE_FILE
    return OfflineKeys(
        root=root,
        targets=load_file_signer(targets) if targets.is_file() else None,
        online=load_file_signer(online) if online.is_file() else None,
    )


def existing_online_signer(uri: str, public_key_file: Path) -> Signer:
    """An online key that already exists (in a KMS, HSM, Vault or a file): its signer URI and
    its public key (PEM). Checked by signing once: the URI must hold that key's private half."""
    try:
        public = SSlibKey.from_crypto(load_pem_public_key(public_key_file.read_bytes()))
    except OSError as exc:
        raise KeyProblem(f"cannot read the public key {public_key_file}: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise KeyProblem(f"{public_key_file} is not a PEM public key ({exc})") from None
    signer = online_signer(uri, public)
    probe = b"bastion: does this signer hold the private half of the key?"
    try:
        public.verify_signature(signer.sign(probe), probe)
    except Exception as exc:  # noqa: BLE001 - a back-end's failure or a wrong key, as one line
        raise KeyProblem(
            f"the key at {uri.split('?')[0]!r} does not sign for {public_key_file}: "
            f"{type(exc).__name__}"
        ) from None
    return signer


def online_signer(uri: str, public_key: Key) -> Signer:
    """The online key from its signer URI (``file2:/path``, ``awskms:...``, ``hsm:...``,
    ``hv:...``), checked against the public key root names for the online roles."""
    try:
        return Signer.from_priv_key_uri(uri, public_key)
    except Exception as exc:  # noqa: BLE001 - any signer back-end's failure, as one line
        raise KeyProblem(
            f"cannot load the online key {uri.split('?')[0]!r}: {type(exc).__name__}: {exc}"
        ) from None
