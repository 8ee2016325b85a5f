"""An initialized signed repository (16 bins, in-memory keys) and ngclient over the test client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface

from bastion.signing import services
from bastion.signing.queries import metadata_body

ORIGIN = "http://testserver"


class ClientFetcher(FetcherInterface):
    """python-tuf's network seam, answered by Django's test client (no server, frozen time ok)."""

    def __init__(self, client) -> None:
        self.client = client
        self.requested: list[str] = []

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = url.removeprefix(ORIGIN)
        self.requested.append(path)
        response = self.client.get(path)
        if response.status_code != 200:
            raise DownloadHTTPError(f"GET {path}: {response.status_code}", response.status_code)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        return iter([body])


class Keys:
    def __init__(self) -> None:
        self.root = [CryptoSigner.generate_ed25519()]
        self.targets = CryptoSigner.generate_ed25519()
        self.online = CryptoSigner.generate_ed25519()


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def repository(db, keys, monkeypatch):
    """Initialized with 16 bins; the online signer is the in-memory one."""
    monkeypatch.setattr(services, "_online_signer", lambda: keys.online)
    services.initialize(
        root=keys.root, root_threshold=1, targets=keys.targets, online=keys.online, bins=16
    )
    return keys


def make_updater(client, tmp_path: Path, *, root: bytes | None = None) -> Updater:
    metadata_dir = tmp_path / "metadata"
    metadata_dir.mkdir(parents=True, exist_ok=True)
    targets_dir = tmp_path / "targets"
    targets_dir.mkdir(parents=True, exist_ok=True)
    trusted = root if root is not None else metadata_body("root", 1)
    assert trusted is not None
    return Updater(
        metadata_dir=str(metadata_dir),
        metadata_base_url=f"{ORIGIN}/tuf/",
        target_dir=str(targets_dir),
        target_base_url=f"{ORIGIN}/files/",
        fetcher=ClientFetcher(client),
        bootstrap=trusted,
    )
