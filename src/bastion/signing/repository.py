"""A ``tuf.repository.Repository`` whose storage is the database (``signing.models``).

Every method must run inside a transaction that holds the index lock
(``bastion.projects.services.lock_index``): that lock is what makes each role's version history
linear across workers and nodes (PEP 458 P129: bin-n, then snapshot, then timestamp).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from securesystemslib.signer import Key, Signer
from tuf.api.metadata import (
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Signed,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization import SignedSerializer
from tuf.api.serialization.json import CanonicalJSONSerializer, JSONSerializer
from tuf.repository import Repository

from bastion.signing.errors import NotInitialized, ThresholdNotMet
from bastion.signing.models import CurrentRole, SignedMetadata

BINS_PREFIX = "bins"
TOP_LEVEL = (Root.type, Targets.type, Snapshot.type, Timestamp.type)
_SERIALIZER = JSONSerializer(compact=True)


class FastCanonicalSerializer(SignedSerializer):
    """The OLPC canonical JSON clients verify signatures over, via the C ``json`` encoder.

    Sorted keys, no whitespace, raw UTF-8 and integers only: for such data ``json.dumps`` writes
    the same bytes as securesystemslib's ``encode_canonical``, except that it escapes control
    characters where canonical JSON does not. So any output containing a backslash (an escape
    of some kind) is re-encoded by securesystemslib. 5-10x faster on a snapshot of 1,024 bins;
    equality with ``CanonicalJSONSerializer`` is tested in tests/unit/signing.
    """

    _fallback = CanonicalJSONSerializer()

    def serialize(self, signed_obj: Signed) -> bytes:
        data = json.dumps(
            signed_obj.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
        if b"\\" in data:
            return self._fallback.serialize(signed_obj)
        return data


CANONICAL = FastCanonicalSerializer()


def bins_of(targets: Targets) -> SuccinctRoles:
    delegations = targets.delegations
    if delegations is None or delegations.succinct_roles is None:  # pragma: no cover
        raise NotInitialized("the targets role delegates to no hash bins")
    return delegations.succinct_roles


def bin_index(name: str) -> int:
    """``bins-0a3`` -> 0x0a3 (TAP 15 names the bins by their index in hexadecimal)."""
    return int(name.rsplit("-", 1)[1], 16)


def bin_name(succinct: SuccinctRoles, index: int) -> str:
    return f"{succinct.name_prefix}-{index:0{succinct.suffix_len}x}"


def target_file(path: str, length: int, sha256: str, blake2b_256: str) -> TargetFile:
    # sha256 first: ngclient fetches the consistent-snapshot form "<first hash>.<basename>".
    return TargetFile(length, {"sha256": sha256, "blake2b-256": blake2b_256}, path)


class DatabaseRepository(Repository):
    """open() reads the current version of a role; close() signs and stores the next one.

    ``signers`` maps ``root``, ``targets``, ``snapshot``, ``timestamp`` and ``bins`` (all hash
    bins) to the signers available for it; ``lifetimes`` gives each its expiry period.
    """

    def __init__(
        self,
        *,
        signers: Mapping[str, Sequence[Signer]],
        lifetimes: Mapping[str, timedelta],
        now: datetime,
    ) -> None:
        self.signers = signers
        self.lifetimes = lifetimes
        self.now = now.replace(microsecond=0)
        self._new: set[str] = set()
        self._snapshot_info: MetaFile | None = None
        self.published: list[tuple[str, int]] = []

    # --- storage -------------------------------------------------------------------------

    @staticmethod
    def current_version(role: str) -> int | None:
        return CurrentRole.objects.filter(role=role).values_list("version", flat=True).first()

    @staticmethod
    def body(role: str, version: int) -> bytes:
        row = SignedMetadata.objects.filter(role=role, version=version).values_list("body").first()
        if row is None:
            raise NotInitialized(f"no version {version} of the role {role!r}")
        return bytes(row[0])

    def open(self, role: str) -> Metadata:  # type: ignore[type-arg]
        version = self.current_version(role)
        if version is not None:
            return Metadata.from_bytes(self.body(role, version))
        self._new.add(role)
        signed: Signed
        if role == Root.type:
            signed = Root()
        elif role == Snapshot.type:
            signed = Snapshot()
        elif role == Timestamp.type:
            signed = Timestamp()
        else:
            signed = Targets()
        return Metadata(signed)

    def _kind(self, role: str) -> str:
        return role if role in TOP_LEVEL else BINS_PREFIX

    def close(self, role: str, md: Metadata) -> None:  # type: ignore[type-arg]
        kind = self._kind(role)
        if role in self._new:
            self._new.discard(role)
        else:
            md.signed.version += 1
        md.signed.expires = self.now + self.lifetimes[kind]
        md.signatures.clear()
        for signer in self.signers.get(kind, ()):
            md.sign(signer, append=True, signed_serializer=CANONICAL)
        self._check_threshold(role, md)
        body = md.to_bytes(_SERIALIZER)
        version = md.signed.version
        SignedMetadata.objects.filter(role=role, superseded=None).update(superseded=self.now)
        SignedMetadata.objects.create(
            role=role, version=version, body=body, expires=md.signed.expires, created=self.now
        )
        CurrentRole.objects.update_or_create(
            role=role, defaults={"version": version, "expires": md.signed.expires}
        )
        if role == Snapshot.type:
            self._snapshot_info = MetaFile(
                version, len(body), {"sha256": hashlib.sha256(body).hexdigest()}
            )
        self.published.append((role, version))

    def _check_threshold(self, role: str, md: Metadata) -> None:  # type: ignore[type-arg]
        """Never publish metadata its delegator would reject (a missing key fails loudly)."""
        if role == Root.type:
            root = md.signed
            assert isinstance(root, Root)
            root.verify_delegate(Root.type, md.signed_bytes, md.signatures)
            return
        if not md.signatures:  # each other role has threshold 1 (PEP 458's online and targets)
            raise ThresholdNotMet(f"no key available to sign the role {role!r}")

    # --- what snapshot and timestamp describe -----------------------------------------------

    @property
    def targets_infos(self) -> dict[str, MetaFile]:
        rows = CurrentRole.objects.exclude(
            role__in=(Root.type, Snapshot.type, Timestamp.type)
        ).values_list("role", "version")
        return {f"{role}.json": MetaFile(version) for role, version in rows}

    @property
    def snapshot_info(self) -> MetaFile:
        if self._snapshot_info is None:
            version = self.current_version(Snapshot.type)
            if version is None:
                raise NotInitialized("no snapshot yet")
            body = self.body(Snapshot.type, version)
            self._snapshot_info = MetaFile(
                version, len(body), {"sha256": hashlib.sha256(body).hexdigest()}
            )
        return self._snapshot_info

    # --- operations ------------------------------------------------------------------------

    def write_bins(
        self, succinct: SuccinctRoles, contents: Mapping[int, Iterable[TargetFile]]
    ) -> dict[str, int]:
        """A new version of each listed bin with exactly these targets; {bin name: version}."""
        versions: dict[str, int] = {}
        current = dict(
            CurrentRole.objects.filter(
                role__in=[bin_name(succinct, index) for index in contents]
            ).values_list("role", "version")
        )
        for index, targets in contents.items():
            # A bin's content is all in the Target rows: no need to read (parse) its last version.
            name = bin_name(succinct, index)
            if name not in current:
                self._new.add(name)
            signed = Targets(
                version=current.get(name, 1),
                targets={target.path: target for target in targets},
            )
            self.close(name, Metadata(signed))
            versions[name] = signed.version
        return versions

    def write_snapshot(self, changed: Mapping[str, int]) -> None:
        """A new snapshot naming the new versions of ``changed`` targets roles (only those are
        touched: O(changed), not O(bins), besides re-serialising)."""
        with self.edit_snapshot() as snapshot:
            for role, version in changed.items():
                snapshot.meta[f"{role}.json"] = MetaFile(version)

    def write_timestamp(self) -> None:
        with self.edit_timestamp() as timestamp:
            timestamp.snapshot_meta = self.snapshot_info

    def bootstrap(
        self,
        *,
        root_keys: Sequence[Key],
        root_threshold: int,
        targets_key: Key,
        online_key: Key,
        bins: int,
    ) -> None:
        """Version 1 of every role: root, targets delegating to ``bins`` succinct hash bins
        (TAP 15) signed by the online key, every (empty) bin, snapshot and timestamp."""
        with self.edit_root() as root:
            for key in root_keys:
                root.add_key(key, Root.type)
            root.roles[Root.type].threshold = root_threshold
            root.add_key(targets_key, Targets.type)
            root.add_key(online_key, Snapshot.type)
            root.add_key(online_key, Timestamp.type)
            root.consistent_snapshot = True
        succinct = SuccinctRoles(
            keyids=[online_key.keyid],
            threshold=1,
            bit_length=bins.bit_length() - 1,
            name_prefix=BINS_PREFIX,
        )
        with self.edit_targets() as targets:
            targets.delegations = Delegations(
                keys={online_key.keyid: online_key}, roles=None, succinct_roles=succinct
            )
        versions = self.write_bins(succinct, {index: () for index in range(bins)})
        versions[Targets.type] = targets.version
        self.write_snapshot(versions)
        self.write_timestamp()
