"""The fast canonical JSON serializer writes exactly securesystemslib's canonical bytes."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from tuf.api.metadata import MetaFile, Snapshot, TargetFile, Targets
from tuf.api.serialization.json import CanonicalJSONSerializer

from bastion.signing.repository import CANONICAL

EXPIRES = datetime(2030, 1, 1, tzinfo=UTC)


@given(st.lists(st.text(min_size=1, max_size=40), max_size=8), st.integers(0, 2**53))
def test_targets_with_any_paths_serialize_identically(paths: list[str], length: int) -> None:
    # Any text: quotes, backslashes, control characters and non-ASCII take the fallback or agree.
    targets = Targets(
        version=3,
        expires=EXPIRES,
        targets={
            p: TargetFile(length, {"sha256": "ab" * 32, "blake2b-256": "cd" * 32}, p) for p in paths
        },
    )
    assert CANONICAL.serialize(targets) == CanonicalJSONSerializer().serialize(targets)


def test_a_snapshot_of_many_bins_serializes_identically() -> None:
    snapshot = Snapshot(
        version=7,
        expires=EXPIRES,
        meta={f"bins-{i:03x}.json": MetaFile(i + 1) for i in range(1024)},
    )
    assert CANONICAL.serialize(snapshot) == CanonicalJSONSerializer().serialize(snapshot)
