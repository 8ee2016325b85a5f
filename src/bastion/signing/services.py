"""State changes of the signed repository (TUF, PEP 458): create, update on change, refresh, rotate.

Every change runs in a transaction holding the index lock (``lock_index``), the same lock every
upload, yank and deletion holds: on PostgreSQL a row lock shared by all nodes, on SQLite the
single writer. So the version history of each role is linear: bin-n, then snapshot, then
timestamp (PEP 458 P129), never two versions of one role from two workers.

When: a yank, un-yank, deletion or status change is signed in its own transaction. Uploads are
signed in rounds (``sign_changes``: every project changed since ``SigningState.serial``, one
snapshot and one timestamp for all of them): the worker's background signer runs one shortly
after an upload (``background``), and a read of ``timestamp.json`` runs one first if anything is
unsigned, so a client that starts from the timestamp always sees every upload that returned.

Targets (docs/adr/0005-tuf-key-layout.md):
- a distribution file: its storage key ``ab/cd/<blake2b rest>/<filename>``, the path after
  ``/files/`` (targets base URL ``<index>/files/``);
- a project's simple pages: ``simple/<project>/index.html`` and ``simple/<project>/index.json``
  (targets base URL ``<index>/``), the exact bytes ``/simple/<project>/`` serves.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, OuterRef, Q, Subquery
from django.utils import timezone
from securesystemslib.signer import Key, Signer
from tuf.api.metadata import (
    Metadata,
    Root,
    Snapshot,
    SuccinctRoles,
    Targets,
    Timestamp,
)

from bastion.index import pages
from bastion.projects.models import File, IndexState, Project, ProjectStatus
from bastion.projects.services import lock_index
from bastion.signing import keys as keyfiles
from bastion.signing.errors import AlreadyInitialized, KeyProblem, NotInitialized, ThresholdNotMet
from bastion.signing.models import (
    CurrentRole,
    SignedMetadata,
    SignedPage,
    SignedProject,
    SigningState,
    Target,
)
from bastion.signing.repository import (
    BINS_PREFIX,
    DatabaseRepository,
    TargetRow,
    bin_index,
    bins_of,
)

log = logging.getLogger(__name__)

PAGE_TARGETS = ((pages.SIMPLE_HTML, "index.html"), (pages.SIMPLE_JSON, "index.json"))
OFFLINE_MARGIN = timedelta(days=30)  # warn (or re-sign, with the keys at hand) this long before


def page_target_path(project: str, filename: str) -> str:
    return f"simple/{project}/{filename}"


def _lifetimes() -> dict[str, timedelta]:
    tuf = settings.BASTION.tuf
    return {
        Root.type: tuf.root_expiry,
        Targets.type: tuf.targets_expiry,
        Snapshot.type: tuf.snapshot_expiry,
        Timestamp.type: tuf.timestamp_expiry,
        BINS_PREFIX: tuf.bins_expiry,
    }


def initialized() -> bool:
    return CurrentRole.objects.filter(role=Root.type).exists()


# --- the online key, cached per process ---------------------------------------------------

_cache_lock = threading.Lock()
# (root version, targets version) -> their parsed roles, for versions this process saw committed.
_roles_cache: dict[tuple[int, int], tuple[Root, SuccinctRoles]] = {}
_signer_cache: dict[tuple[str, str], Signer] = {}


def _remember_roles(versions: tuple[int, int], roles: tuple[Root, SuccinctRoles]) -> None:
    with _cache_lock:
        _roles_cache.clear()
        _roles_cache[versions] = roles


def _trusted_roles() -> tuple[int, Root, SuccinctRoles] | None:
    """The current root (version, role) and the bins targets delegates to, or None before
    ``bastion tuf init``: one query for both versions; parsed once per process per versions.

    A version is unique per role, so once committed it names one content; what this
    transaction itself wrote (a rotation) is parsed but only remembered if it commits.
    """
    versions = dict(
        CurrentRole.objects.filter(role__in=(Root.type, Targets.type)).values_list(
            "role", "version"
        )
    )
    if Root.type not in versions or Targets.type not in versions:
        return None
    key = (versions[Root.type], versions[Targets.type])
    roles = _roles_cache.get(key)
    if roles is None:
        root = Metadata.from_bytes(DatabaseRepository.body(Root.type, key[0])).signed
        targets = Metadata.from_bytes(DatabaseRepository.body(Targets.type, key[1])).signed
        assert isinstance(root, Root) and isinstance(targets, Targets)
        parsed = (root, bins_of(targets))
        transaction.on_commit(lambda: _remember_roles(key, parsed))
        roles = parsed
    return key[0], roles[0], roles[1]


def _current_roles() -> tuple[int, Root, SuccinctRoles]:
    roles = _trusted_roles()
    if roles is None:
        raise NotInitialized("the signed repository is not initialized (bastion tuf init)")
    return roles


def _current_root() -> tuple[int, Root]:
    version, root, _bins = _current_roles()
    return version, root


def _current_bins() -> SuccinctRoles:
    return _current_roles()[2]


def bin_for(path: str) -> str:
    """The hash bin responsible for ``path`` (TAP 15)."""
    return _current_bins().get_role_for_target(path)


def online_public_key(root: Root) -> Key:
    return root.get_key(root.roles[Timestamp.type].keyids[0])


def _online_signer() -> Signer:
    _version, root = _current_root()
    public = online_public_key(root)
    uri = settings.BASTION.tuf.online_key_uri
    cached = _signer_cache.get((uri, public.keyid))
    if cached is None:
        cached = keyfiles.online_signer(uri, public)
        with _cache_lock:
            _signer_cache.clear()
            _signer_cache[(uri, public.keyid)] = cached
    return cached


def _online_repository(now: datetime, *, online: Signer | None = None) -> DatabaseRepository:
    signer = online or _online_signer()
    return DatabaseRepository(
        signers={Snapshot.type: [signer], Timestamp.type: [signer], BINS_PREFIX: [signer]},
        lifetimes=_lifetimes(),
        now=now,
    )


# --- targets --------------------------------------------------------------------------------


@dataclass
class _Changes:
    bins: set[int] = field(default_factory=set)


def _desired_targets(name: str, now: datetime) -> dict[str, tuple[int, str, str]]:
    """path -> (length, sha256, blake2b-256) of everything the project has to sign now."""
    project = Project.objects.filter(normalized_name=name).first()
    if project is None:
        return {}
    desired: dict[str, tuple[int, str, str]] = {}
    if project.status != ProjectStatus.QUARANTINED:  # its files are not served (PEP 792)
        for key, size, sha256, blake2 in File.objects.filter(project=project).values_list(
            "storage_key", "size", "sha256", "blake2_256"
        ):
            desired[key] = (size, sha256, blake2)
    for kind, filename in PAGE_TARGETS:
        # The cached rendering if current, else rendered and stored now: the bytes served.
        page = pages.project_page(name, kind)
        if page is None:  # pragma: no cover - the project row was read above, under the lock
            continue
        path = page_target_path(name, filename)
        sha256 = hashlib.sha256(page.body).hexdigest()
        blake2 = hashlib.blake2b(page.body, digest_size=32).hexdigest()
        desired[path] = (len(page.body), sha256, blake2)
        # Bytes signed before (the HTML page carries no serial: a yank then an un-yank brings
        # back the earlier page) are the current page again: not superseded, not collected.
        if not SignedPage.objects.filter(path=path, sha256=sha256).update(superseded=None):
            SignedPage.objects.create(
                path=path, sha256=sha256, blake2b_256=blake2, body=page.body, created=now
            )
        SignedPage.objects.filter(path=path, superseded=None).exclude(sha256=sha256).update(
            superseded=now
        )
    return desired


def _sync_project(name: str, succinct: SuccinctRoles, changes: _Changes, now: datetime) -> None:
    """Bring the project's Target rows in line with what it serves; note the bins touched."""
    desired = _desired_targets(name, now)
    existing = {
        row.path: row
        for row in Target.objects.filter(project=name).only(
            "path", "bin", "length", "sha256", "blake2b_256"
        )
    }
    gone = [path for path in existing if path not in desired]
    if gone:
        changes.bins.update(existing[path].bin for path in gone)
        Target.objects.filter(path__in=gone).delete()
        SignedPage.objects.filter(path__in=gone, superseded=None).update(superseded=now)
    added = []
    for path, (length, sha256, blake2) in desired.items():
        old = existing.get(path)
        if old is not None and (old.length, old.sha256, old.blake2b_256) == (
            length,
            sha256,
            blake2,
        ):
            continue
        index = bin_index(succinct.get_role_for_target(path))
        changes.bins.add(index)
        if old is None:
            added.append(
                Target(
                    path=path,
                    project=name,
                    bin=index,
                    length=length,
                    sha256=sha256,
                    blake2b_256=blake2,
                )
            )
        else:
            Target.objects.filter(pk=old.pk).update(
                length=length, sha256=sha256, blake2b_256=blake2
            )
    Target.objects.bulk_create(added)
    serial = Project.objects.filter(normalized_name=name).values_list("serial", flat=True).first()
    if serial is None:
        SignedProject.objects.filter(project=name).delete()
    else:
        SignedProject.objects.bulk_create(
            [SignedProject(project=name, serial=serial)],
            update_conflicts=True,
            unique_fields=["project"],
            update_fields=["serial"],
        )


def _bin_contents(indexes: Iterable[int]) -> dict[int, list[TargetRow]]:
    contents: dict[int, list[TargetRow]] = {index: [] for index in indexes}
    rows = Target.objects.filter(bin__in=list(contents)).values_list(
        "bin", "path", "length", "sha256", "blake2b_256"
    )
    for index, *row in rows.iterator(chunk_size=2000):
        contents[index].append(tuple(row))  # type: ignore[arg-type]
    return contents


def _publish(
    repository: DatabaseRepository,
    succinct: SuccinctRoles,
    bins: Iterable[int],
    *,
    extra: dict[str, int] | None = None,
) -> None:
    """PEP 458 P129: the changed bins, then snapshot, then timestamp."""
    repository.publish(succinct, _bin_contents(sorted(set(bins))), extra=extra)


def _mark_signed(state: IndexState) -> None:
    """Everything up to the locked state's serial is signed (``queries.unsigned_changes``)."""
    SigningState.objects.bulk_create(
        [SigningState(pk=1, serial=state.serial)],
        update_conflicts=True,
        unique_fields=["id"],
        update_fields=["serial"],
    )


def sign_changes(*, also: str | None = None, now: datetime | None = None) -> bool:
    """Sign every project changed since the last round, and ``also`` (a normalized name whose
    rows may be gone: a deletion): their bins, then one snapshot and one timestamp.

    Runs in its own transaction (a savepoint when called inside one) holding the index lock, so
    no change commits between reading what changed and marking it signed. False when the
    repository is not initialized. Raises when signing fails (nothing is marked signed then).
    """
    now = now or timezone.now()
    with transaction.atomic():
        state = lock_index()
        roles = _trusted_roles()
        if roles is None:
            return False
        succinct = roles[2]
        through = SigningState.objects.filter(pk=1).values_list("serial", flat=True).first()
        names = set(
            Project.objects.filter(serial__gt=through or 0).values_list(
                "normalized_name", flat=True
            )
        )
        if also is not None:
            names.add(also)
        changes = _Changes()
        for name in sorted(names):
            _sync_project(name, succinct, changes, now)
        if changes.bins:
            _publish(_online_repository(now), succinct, changes.bins)
        _mark_signed(state)
    return True


def sign_project(project: Project | str, *, now: datetime | None = None) -> bool:
    """Re-sign the targets of one project (a yank, un-yank or deletion), with anything else
    still unsigned. See ``sign_changes``."""
    name = project if isinstance(project, str) else project.normalized_name
    return sign_changes(also=name, now=now)


def targets_changed(project: Project | str, *, now: datetime | None = None) -> None:
    """The hook of yanks, un-yanks, deletions and status changes; never fails the change itself.

    Called inside the change's transaction, after its rows changed and under the index lock
    already held: the new metadata commits atomically with the change. If signing fails (the
    online key's KMS is down, say), the savepoint is rolled back, the change still commits, and
    the next ``bastion tuf refresh`` signs it (``SignedProject.serial`` lags the project's).
    """
    try:
        sign_project(project, now=now)
    except Exception:  # noqa: BLE001 - logged; repaired by the next refresh
        name = project if isinstance(project, str) else project.normalized_name
        log.exception("signing the metadata of %s failed; `bastion tuf refresh` will retry", name)


# --- creation ---------------------------------------------------------------------------------


def initialize(
    *,
    root: Sequence[Signer],
    root_threshold: int,
    targets: Signer,
    online: Signer,
    now: datetime | None = None,
    bins: int | None = None,
) -> None:
    """Version 1 of the repository, then every existing project's targets."""
    now = now or timezone.now()
    if root_threshold < 1 or root_threshold > len(root):
        raise ThresholdNotMet(f"a threshold of {root_threshold} needs as many root keys")
    with transaction.atomic():
        state = lock_index()
        if initialized():
            raise AlreadyInitialized(
                "the repository is already initialized; rotate keys with "
                "`bastion tuf rotate-root` / `bastion tuf rotate-online-key`"
            )
        repository = DatabaseRepository(
            signers={
                Root.type: list(root),
                Targets.type: [targets],
                Snapshot.type: [online],
                Timestamp.type: [online],
                BINS_PREFIX: [online],
            },
            lifetimes=_lifetimes(),
            now=now,
        )
        repository.bootstrap(
            root_keys=[signer.public_key for signer in root],
            root_threshold=root_threshold,
            targets_key=targets.public_key,
            online_key=online.public_key,
            bins=bins or settings.BASTION.tuf.bins,
        )
        _repair(_online_repository(now, online=online), now, state)


def ensure_development_repository(*, quiet: bool = False) -> bool:
    """The embedded default: TUF active from the first start, with keys in the data directory.

    True when it created the repository. A no-op when it exists, or off the embedded default
    (there the operator runs ``bastion tuf init`` with keys kept offline).
    """
    config = settings.BASTION
    if not config.embedded or initialized():
        return False
    directory = config.tuf.keys_dir
    found = keyfiles.ensure_development_keys(directory)
    if found.targets is None or found.online is None or not found.root:
        raise KeyProblem(f"{directory} lacks a root, targets or online key")
    initialize(root=found.root, root_threshold=1, targets=found.targets, online=found.online)
    if not quiet:
        import sys

        print(
            f"bastion: created TUF signing keys in {directory} and signed the repository "
            "(PEP 458).\nbastion: warning: these are development keys. In production, create "
            "the root and targets keys offline with `bastion tuf init --keys-dir DIR` and keep "
            "them off this machine.",
            file=sys.stderr,
        )
    return True


# --- refresh ----------------------------------------------------------------------------------


@dataclass
class RefreshReport:
    projects: int = 0
    published: list[tuple[str, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    collected: int = 0


def _stale_projects() -> list[str]:
    signed = SignedProject.objects.filter(project=OuterRef("normalized_name")).values("serial")
    lagging = (
        Project.objects.annotate(signed=Subquery(signed[:1]))
        .filter(Q(signed__isnull=True) | ~Q(signed=F("serial")))
        .values_list("normalized_name", flat=True)
    )
    orphaned = SignedProject.objects.exclude(
        project__in=Project.objects.values("normalized_name")
    ).values_list("project", flat=True)
    return sorted(set(lagging) | set(orphaned))


def _repair(repository: DatabaseRepository, now: datetime, state: IndexState) -> int:
    """Sign every project whose signed serial lags (or that is gone): all there is to sign."""
    succinct = _current_bins()
    changes = _Changes()
    names = _stale_projects()
    for name in names:
        _sync_project(name, succinct, changes, now)
    if changes.bins:
        _publish(repository, succinct, changes.bins)
    _mark_signed(state)
    return len(names)


def refresh(
    *, now: datetime | None = None, offline: keyfiles.OfflineKeys | None = None
) -> RefreshReport:
    """Sign what lags (a failed hook) and re-sign what is about to expire; collect garbage.

    Online roles are re-signed when less than half their lifetime is left; root and targets
    when less than 30 days are left, if their keys are at hand (``offline``; on the embedded
    default the development keys), else reported as a warning.
    """
    now = now or timezone.now()
    report = RefreshReport()
    lifetimes = _lifetimes()
    with transaction.atomic():
        state = lock_index()
        if not initialized():
            raise NotInitialized("the signed repository is not initialized (bastion tuf init)")
        if offline is None and settings.BASTION.embedded and settings.BASTION.tuf.keys_dir.is_dir():
            offline = keyfiles.read_keys(settings.BASTION.tuf.keys_dir)
        repository = _online_repository(now)
        report.projects = _repair(repository, now, state)
        succinct = _current_bins()
        due = dict(
            CurrentRole.objects.filter(expires__lt=now + max(lifetimes.values())).values_list(
                "role", "expires"
            )
        )
        extra: dict[str, int] = {}
        for role in (Root.type, Targets.type):
            if role in due and due[role] < now + min(lifetimes[role] / 2, OFFLINE_MARGIN):
                signer = _offline_signers(role, offline)
                if not signer:
                    report.warnings.append(
                        f"{role} expires {due[role].isoformat()}: re-sign it with the offline "
                        "keys (`bastion tuf refresh --keys-dir DIR`)"
                    )
                    continue
                _resign_offline(role, signer, now, extra)
        stale_bins = [
            bin_index(role)
            for role, expires in due.items()
            if role.startswith(BINS_PREFIX + "-") and expires < now + lifetimes[BINS_PREFIX] / 2
        ]
        snapshot_due = due.get(Snapshot.type, now) < now + lifetimes[Snapshot.type] / 2
        if stale_bins or extra or snapshot_due:
            _publish(repository, succinct, stale_bins, extra=extra)
        elif due.get(Timestamp.type, now) < now + lifetimes[Timestamp.type] / 2:
            repository.publish(succinct, {}, snapshot=False)
        report.published = repository.published
        report.collected = collect_garbage(now=now)
    return report


def _offline_signers(role: str, offline: keyfiles.OfflineKeys | None) -> list[Signer]:
    if offline is None:
        return []
    if role == Root.type:
        return list(offline.root)
    return [offline.targets] if offline.targets is not None else []


def _resign_offline(role: str, signers: list[Signer], now: datetime, extra: dict[str, int]) -> None:
    repository = DatabaseRepository(signers={role: signers}, lifetimes=_lifetimes(), now=now)
    with repository.edit(role) as signed:
        pass
    if role == Targets.type:
        extra[Targets.type] = signed.version


def collect_garbage(*, now: datetime | None = None) -> int:
    """Forget superseded metadata and simple pages older than the grace period (root: never)."""
    now = now or timezone.now()
    cutoff = now - settings.BASTION.tuf.gc_grace
    deleted, _ = (
        SignedMetadata.objects.filter(superseded__lt=cutoff).exclude(role=Root.type).delete()
    )
    pages_deleted, _ = SignedPage.objects.filter(superseded__lt=cutoff).delete()
    return deleted + pages_deleted


# --- rotation -------------------------------------------------------------------------------


def rotate_root(
    *,
    old_root: Sequence[Signer],
    new_root: Sequence[Signer],
    new_threshold: int,
    now: datetime | None = None,
) -> int:
    """A new root version listing ``new_root`` keys, signed by a threshold of the old root
    keys and a threshold of the new ones (TUF 5.3.4: clients check both). Returns its version."""
    now = now or timezone.now()
    if new_threshold < 1 or new_threshold > len(new_root):
        raise ThresholdNotMet(f"a threshold of {new_threshold} needs as many new root keys")
    with transaction.atomic():
        lock_index()
        _version, current = _current_root()
        old_ids = set(current.roles[Root.type].keyids)
        usable_old = [signer for signer in old_root if signer.public_key.keyid in old_ids]
        if len(usable_old) < current.roles[Root.type].threshold:
            raise ThresholdNotMet(
                f"the current root needs {current.roles[Root.type].threshold} of its keys; "
                f"{len(usable_old)} given"
            )
        repository = DatabaseRepository(
            signers={Root.type: [*usable_old, *new_root]}, lifetimes=_lifetimes(), now=now
        )
        with repository.edit_root() as root:
            for keyid in list(root.roles[Root.type].keyids):
                root.revoke_key(keyid, Root.type)
            for signer in new_root:
                root.add_key(signer.public_key, Root.type)
            root.roles[Root.type].threshold = new_threshold
        return root.version


def rotate_online_key(
    *,
    root_signers: Sequence[Signer],
    targets_signer: Signer,
    new_online: Signer,
    now: datetime | None = None,
) -> int:
    """Replace the online key: root (snapshot, timestamp keys), targets (the bins' delegation),
    then every bin, snapshot and timestamp re-signed with the new key. Returns the root version."""
    now = now or timezone.now()
    with transaction.atomic():
        lock_index()
        _version, current = _current_root()
        needed = current.roles[Root.type].threshold
        root_ids = current.roles[Root.type].keyids
        if len([s for s in root_signers if s.public_key.keyid in root_ids]) < needed:
            raise ThresholdNotMet(f"the root needs {needed} of its keys to change the online key")
        if targets_signer.public_key.keyid not in current.roles[Targets.type].keyids:
            raise KeyProblem("that is not the targets key the root names")
        old = online_public_key(current)
        offline = DatabaseRepository(
            signers={Root.type: list(root_signers), Targets.type: [targets_signer]},
            lifetimes=_lifetimes(),
            now=now,
        )
        with offline.edit_root() as root:
            for role in (Snapshot.type, Timestamp.type):
                root.revoke_key(old.keyid, role)
                root.add_key(new_online.public_key, role)
        with offline.edit_targets() as targets:
            succinct = bins_of(targets)
            targets.revoke_key(old.keyid)  # role None: the succinct bins
            targets.add_key(new_online.public_key)
        repository = _online_repository(now, online=new_online)
        _publish(
            repository,
            succinct,
            range(2**succinct.bit_length),
            extra={Targets.type: targets.version},
        )
        return root.version
