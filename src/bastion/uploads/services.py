"""The upload service: authorise, validate, store and record one distribution file.

Order (the token was authenticated before the body was read): the token's project caveats
and the project role -> digests -> duplicate
check -> distribution validation (``bastion.core.dists``) -> one transaction with the project,
release and file rows, while another thread stores the blob (a small one on local disk
overlaps the transaction; others are waited for before it); the commit waits for the blob.
Anything that fails before the commit leaves no blob and no row behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from packaging.version import Version

from bastion import rows
from bastion.actors import Actor
from bastion.audit.services import batched as audit_batched
from bastion.audit.services import record
from bastion.core.dists import DistributionRejected, ValidatedDistribution, validate_distribution
from bastion.core.dists.policy import Policy
from bastion.core.names import confusable_key, is_valid_name, normalize_name
from bastion.core.versions import canonical_version, parse_version
from bastion.outages import RETRY_AFTER
from bastion.projects.models import File, FilenameRecord, Project, ProjectStatus, Release
from bastion.projects.queries import UPLOAD_ROLES, project_and_role, similar_project
from bastion.projects.services import (
    bump_serial,
    create_project,
    lock_index,
    name_reserved_against,
    reservation_message,
)
from bastion.security.errors import TokenInvalid
from bastion.signing.background import soon as signing_soon
from bastion.storage import BlobStore, StorageError, file_key, metadata_key
from bastion.storage.local import LocalBlobStore, PendingWrite
from bastion.tokens import services as token_services
from bastion.tokens.services import AuthenticatedToken
from bastion.uploads import limits
from bastion.uploads.errors import Problem, UploadError, bad_request, forbidden, rate_limited
from bastion.uploads.models import ProhibitedName
from bastion.uploads.protocol import UploadRequest, check_digests

log = logging.getLogger(__name__)

# The largest blob whose write to local disk may overlap the transaction (see upload_distribution).
OVERLAP_MAX_SIZE = 1024 * 1024


@dataclass(frozen=True)
class UploadOutcome:
    file: File
    created: bool  # False: an identical file was already there (idempotent re-upload, P72)


def _authorize(
    *, principal: AuthenticatedToken, project: Project | None, role: str | None, name: str
) -> None:
    """The project half of the token's caveats, and the user's ``role`` on the project."""
    try:
        principal.check_project(
            project_name=normalize_name(name), project_id=str(project.pk) if project else None
        )
    except TokenInvalid as exc:
        raise forbidden(exc.code, str(exc)) from None
    user = principal.user
    if project is None:
        if not is_valid_name(name):
            raise bad_request(
                "project.name.invalid",
                f"The name {name!r} is invalid: a project name must start and end with a letter "
                "or digit and contain only letters, digits, '.', '_' and '-'.",
                field="name",
            )
        return
    if role not in UPLOAD_ROLES:
        raise forbidden(
            "project.forbidden",
            f"The user '{user.username}' isn't allowed to upload to project '{project.name}'.",
        )
    if project.status in (ProjectStatus.ARCHIVED, ProjectStatus.QUARANTINED):
        raise forbidden(
            "project.not-accepting-uploads",
            f"Project '{project.name}' is {project.status} and does not accept uploads.",
        )


def _creation_limits(actor: Actor) -> list[tuple[limits.Limit, str]]:
    """The limits a new project counts against: per user and per client address."""
    assert actor.user is not None
    if actor.user.upload_limits_exempt:
        return []
    named = limits.limits()
    return [
        (named["project-create"], str(actor.user.pk)),
        (named["project-create-ip"], actor.ip_address or "unknown"),
    ]


def _creation_refused(limit: limits.Limit, now: datetime) -> UploadError:
    who = "user" if limit.name == "project-create" else "address"
    return rate_limited(
        limit.name,
        f"Too many new projects: this {who} may create {limit.count} per "
        f"{limit.seconds // 60} minutes; retry in {limit.reset_after(now)} s. Uploads to "
        "existing projects are not affected.",
        limit.headers(now),
    )


def _check_project_creation(actor: Actor, now: datetime) -> None:
    """Before validating: refuse at once a creation the limits already forbid (a cheap read;
    ``_count_project_creation`` decides exactly, under the lock)."""
    for limit, subject in _creation_limits(actor):
        if limits.peek(limit, subject, now) >= limit.count:
            raise _creation_refused(limit, now)


def _count_project_creation(actor: Actor, now: datetime) -> None:
    """Count this creation; 429 past a limit, 503 if the counters cannot be reached (creation
    fails closed). In the database the count is part of the upload's transaction."""
    for limit, subject in _creation_limits(actor):
        try:
            used = limits.hit(limit, subject, now)
        except limits.CounterStoreUnavailable:
            raise UploadError(
                503,
                "ratelimit.unavailable",
                "New projects cannot be created right now (the rate-limit store is "
                "unavailable); retry later. Uploads to existing projects still work.",
                headers={"Retry-After": str(RETRY_AFTER)},
            ) from None
        if used > limit.count:
            raise _creation_refused(limit, now)


def _same_version(canonical: str, declared: str) -> bool:
    try:
        return canonical_version(parse_version(declared)) == canonical
    except ValueError:
        return False


def _duplicate(request: UploadRequest) -> File | None:
    """P72: identical file -> the existing row (a no-op); anything else that clashes -> 400.

    Reads several rows, so the answer is only consistent where no upload can commit between
    them: under the index lock (``_record``), or through ``_duplicate_before_validation``.
    """
    hashes = request.content.hashes
    filename = request.content.filename
    if not _any_clash(filename, hashes.blake2b_256):  # the usual answer, in one statement
        return None
    clashes = list(
        File.objects.select_related("project", "release").filter(
            Q(filename=filename) | Q(blake2_256=hashes.blake2b_256)
        )[:2]
    )
    existing = next((f for f in clashes if f.filename == filename), None)
    if existing is not None:
        if (
            existing.sha256 == hashes.sha256
            and existing.blake2_256 == hashes.blake2b_256
            # Only a no-op for the project and release the file belongs to: the caller was
            # authorised for the project the form names, not necessarily for this one.
            and existing.project.normalized_name == normalize_name(request.name)
            and _same_version(existing.release.canonical_version, request.version)
        ):
            return existing
        if existing.sha256 == hashes.sha256 and existing.blake2_256 == hashes.blake2b_256:
            raise bad_request(
                "upload.file-exists",
                f"File already exists ('{filename}') in project '{existing.project.name}' "
                f"{existing.release.version}; the form names another project or version.",
            )
        raise bad_request(
            "upload.file-exists",
            f"File already exists ('{filename}', with blake2_256 hash '{existing.blake2_256}'); "
            "a file name cannot be reused with different content.",
        )
    if clashes:
        raise bad_request(
            "upload.file-exists",
            f"File already exists: the same content was uploaded as '{clashes[0].filename}'.",
        )
    if FilenameRecord.objects.filter(filename=filename).exists():
        raise bad_request(
            "upload.filename-reused",
            f"This filename ('{filename}') has already been used, even if the file was deleted; "
            "use a different version.",
        )
    return None


# Any file with this name or content, or a record of the name once used: one statement that
# answers "no clash" (what nearly every upload gets) faster than the ORM builds two queries.
_CLASH_SQL = (
    "SELECT 1 FROM projects_file WHERE filename = %s OR blake2_256 = %s"
    " UNION ALL SELECT 1 FROM projects_filename_record WHERE filename = %s LIMIT 1"
)


def _any_clash(filename: str, blake2b_256: str) -> bool:
    return rows.fetch_one(_CLASH_SQL, (filename, blake2b_256, filename)) is not None


def _duplicate_before_validation(request: UploadRequest) -> File | None:
    """The duplicate check before the (costly) validation, without holding the lock.

    An identical file is answered at once. A refusal is decided again under the index lock:
    without it, an identical upload committing between two reads here would look like a clash
    (the name free, then the content taken), and an identical retry must be 200 whatever it
    races with. "No clash" needs no second look: ``_record`` checks again under the lock.
    """
    try:
        return _duplicate(request)
    except UploadError:
        with transaction.atomic():
            lock_index()
            return _duplicate(request)


def _policy(*, new_project: bool) -> Policy:
    """The configured policy, plus the operators' prohibited names when a project is new."""
    policy = settings.BASTION.policy
    if not new_project:
        return policy
    extra = frozenset(
        str(name)
        for (name,) in rows.fetch_all("SELECT normalized_name FROM uploads_prohibited_name")
    )
    if not extra:
        return policy
    return dataclasses.replace(policy, prohibited_names=policy.prohibited_names | extra)


def _validate(request: UploadRequest, *, new_project: bool) -> ValidatedDistribution:
    config = settings.BASTION
    try:
        return validate_distribution(
            request.content.path,
            filename=request.content.filename,
            declared=request.declared,
            hashes=request.content.hashes,
            limits=config.limits,
            policy=_policy(new_project=new_project),
            new_project=new_project,
            similar_project=similar_project,
        )
    except DistributionRejected as group:
        problems = list(group.problems)
        first = problems[0]
        message = first.message
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more problem(s), listed in the response body)"
        raise UploadError(
            400,
            first.code,
            message,
            tuple(Problem(p.code, p.message, p.field) for p in problems),
        ) from None


def _check_project_size(project: Project | None, size: int) -> None:
    limit = settings.BASTION.max_project_size
    used = project.total_size if project is not None else 0
    if used + size > limit:
        raise bad_request(
            "upload.project-too-large",
            f"Project size too large. Limit for this project is {limit // (1024**3)} GiB.",
        )


def upload_distribution(
    *,
    actor: Actor,
    request: UploadRequest,
    principal: AuthenticatedToken,
    store: BlobStore,
    now: datetime,
) -> UploadOutcome:
    """Store one distribution for an already authenticated token (``tokens.authenticate``)."""
    early = (
        _EarlyStore.start(store, request)
        if isinstance(store, LocalBlobStore) and request.content.size <= OVERLAP_MAX_SIZE
        else None
    )
    try:
        return _upload(
            actor=actor, request=request, principal=principal, store=store, now=now, early=early
        )
    finally:
        if early is not None:
            # A refused file's writer is done, and nothing of it is left, when the answer
            # leaves (an accepted one was waited for before the commit).
            early.close()


def _upload(
    *,
    actor: Actor,
    request: UploadRequest,
    principal: AuthenticatedToken,
    store: BlobStore,
    now: datetime,
    early: _EarlyStore | None,
) -> UploadOutcome:
    token = principal.token
    project, role = project_and_role(request.name, principal.user)
    _authorize(principal=principal, project=project, role=role, name=request.name)
    if project is None:
        _check_project_creation(actor, now)
    check_digests(request)
    existing = _duplicate_before_validation(request)
    if existing is not None:
        # Batched like every upload's events: the token's row is locked before the audit chain
        # head, in this order on every path (the other order deadlocked on PostgreSQL).
        with transaction.atomic(), audit_batched():
            token_services.record_use(token, actor=actor, now=now)
        return UploadOutcome(file=existing, created=False)
    _check_project_size(project, request.content.size)
    dist = _validate(request, new_project=project is None)

    key = file_key(dist.hashes.blake2b_256, dist.filename)
    # The blob is written (and made durable) by another thread while this one records the rows:
    # the commit waits for it, so no row ever points to a blob that is not there. Only a small
    # blob on local disk overlaps the transaction, which holds the index lock: a large one, or a
    # put to object storage (seconds when it is slow or down), is waited for before the lock.
    storing: futures.Future[None] | _EarlyStore
    if early is not None:
        storing = early.accept(key, dist)
    else:
        storing = _writer().submit(_store, store, key, request, dist)
        try:
            _stored(storing, dist.filename)
        except BaseException:
            futures.wait([storing])
            raise
    try:
        with transaction.atomic(), audit_batched():  # the events appended together
            outcome = _record(
                actor=actor,
                request=request,
                dist=dist,
                key=key,
                now=now,
                stored=lambda: _stored(storing, dist.filename),
            )
            token_services.record_use(token, actor=actor, now=now)
            _stored(storing, dist.filename)
            if outcome.created:  # TUF: signed in the next round (bastion.signing.background)
                transaction.on_commit(signing_soon)
        if isinstance(storing, _EarlyStore):
            storing.committed()
    except BaseException:
        # The writer is done with the store before it is cleaned up.
        if isinstance(storing, _EarlyStore):
            storing.close()
        else:
            futures.wait([storing])
        if not File.objects.filter(storage_key=key).exists():
            _forget_blob(store, key)
        raise
    return outcome


def _store(store: BlobStore, key: str, request: UploadRequest, dist: ValidatedDistribution) -> None:
    """The blob, then a wheel's metadata file; a failure leaves neither (run by ``_writer``)."""
    store.put(key, request.content.path)  # all or nothing: nothing to remove if it fails
    if dist.packagetype == "bdist_wheel":
        try:
            store.put_bytes(metadata_key(key), dist.metadata_bytes)
        except StorageError:
            _forget_blob(store, key)
            raise


class _EarlyStore:
    """A small file bound for the local store: its slow steps overlap work the upload does
    anyway.

    Storing a small file costs little CPU but three waits for the file system's journal: its
    directory, the fsync of the file and that of a wheel's metadata file. A writer thread
    makes these three system calls and no other: the directory and the spool file's fsync
    while the upload is checked and validated, the metadata file's fsync while its rows are
    recorded. The rest is done by the request's thread once the file is accepted (a second
    name for the spool file, the metadata file's bytes), which is quick there: a writer thread
    needs the GIL back after every system call, and a thread busy validating gives it up only
    every few milliseconds, so a writer taking every step finished long after the validation.
    Nothing is stored before the file was validated, the commit waits for both fsyncs
    (``result``), and a file not stored leaves no directory (``close``). The store keeps no
    state, so both threads may use it.
    """

    @classmethod
    def start(cls, store: LocalBlobStore, request: UploadRequest) -> _EarlyStore | None:
        try:
            spool = os.open(request.content.path, os.O_RDONLY)
        except OSError:
            return None  # stored the usual way, which reports what is wrong
        return cls(store, request, spool)

    def __init__(self, store: LocalBlobStore, request: UploadRequest, spool: int) -> None:
        self._store = store
        self._request = request
        self._spool: int | None = spool
        self._verdict = threading.Event()
        self._accepted = False
        self._made: list[Path] = []  # by the writer (read once it is done)
        self._metadata: PendingWrite | None = None
        self._failed: StorageError | None = None  # on the request's thread, in ``accept``
        self._committed = False  # the file's rows committed: its directories hold it for good
        self._future = _writer().submit(self._run, spool)

    def accept(self, key: str, dist: ValidatedDistribution) -> _EarlyStore:
        """Store the file under ``key``: done when ``result`` returns."""
        self._accepted = True
        try:  # durable before the commit: the writer's fsync of the same file (``result``)
            self._store.put(key, self._request.content.path, synced=True)
            if dist.packagetype == "bdist_wheel":
                try:
                    self._metadata = self._store.begin_bytes(metadata_key(key), dist.metadata_bytes)
                except StorageError:
                    _forget_blob(self._store, key)
                    raise
        except StorageError as exc:
            self._failed = exc
        finally:
            self._verdict.set()
        return self

    def result(self) -> None:
        """Wait until the accepted file is stored and durable; ``StorageError`` if it cannot be
        (its blob is then for the caller to remove, ``_forget_blob``)."""
        self._future.result()
        if self._failed is not None:
            raise self._failed
        if self._metadata is not None:
            try:
                self._metadata.finish()
            except OSError as exc:
                raise StorageError(f"could not store a metadata file: {exc.strerror}") from exc

    def committed(self) -> None:
        """The file is stored and its rows committed: ``close`` leaves its directories alone
        (trying to remove them, not empty, cost each upload a system call)."""
        self._committed = True

    def close(self) -> None:
        """The writer is done, and nothing is left of a file not stored (refused, failed):
        called again after its blob was removed, it removes the directory then."""
        self._verdict.set()  # refused, unless accepted already
        futures.wait([self._future])
        if self._metadata is not None:
            with contextlib.suppress(OSError):
                self._metadata.abort()  # (no effect once finished)
        if not self._committed:
            self._store.remove_directories(self._made)  # (kept while a file is in them)
        if self._spool is not None:
            os.close(self._spool)
            self._spool = None

    def _refused(self) -> bool:
        return self._verdict.is_set() and not self._accepted

    def _run(self, spool: int) -> None:
        # A file refused already (an identical re-upload, a project the token may not touch)
        # costs no directory and no fsync: the answer waits for this thread.
        content = self._request.content
        try:
            if not self._refused():
                try:  # the key the file will have if it is accepted (its name is checked later)
                    key = file_key(content.hashes.blake2b_256, content.filename)
                    self._made = self._store.make_directory(key)
                except (ValueError, StorageError):
                    pass  # an invalid name is refused; a directory not made, reported by put()
            if not self._refused():
                os.fsync(spool)
            self._verdict.wait()
            if self._metadata is not None:
                self._metadata.sync()
        except OSError as exc:
            raise StorageError(f"could not store {content.filename}: {exc.strerror}") from exc


def _stored(storing: futures.Future[None] | _EarlyStore, filename: str) -> None:
    try:
        storing.result()
    except StorageError as exc:
        log.error("storing %s failed: %s", filename, exc)
        raise UploadError(
            503,
            "upload.storage-unavailable",
            "Storage is unavailable; retry later.",
            headers={"Retry-After": str(RETRY_AFTER)},
        ) from None


_writers: list[futures.ThreadPoolExecutor] = []  # this process's, made on first use


def _writer() -> futures.ThreadPoolExecutor:
    """Threads that store blobs while uploads record their rows. A store instance is used by one
    thread at a time: the request's thread hands it over and waits before using it again."""
    if not _writers:
        with _writers_lock:
            if not _writers:
                _writers.append(futures.ThreadPoolExecutor(8, thread_name_prefix="bastion-store"))
    return _writers[0]


_writers_lock = threading.Lock()
# A forked child has none of its parent's threads: it makes its own pool.
os.register_at_fork(after_in_child=_writers.clear)


def _forget_blob(store: BlobStore, key: str) -> None:
    try:
        store.delete(key)
        store.delete(metadata_key(key))
    except StorageError as exc:  # pragma: no cover - reported, nothing else to do
        log.error("could not remove the blob of a failed upload %s: %s", key, exc)


def _record(
    *,
    actor: Actor,
    request: UploadRequest,
    dist: ValidatedDistribution,
    key: str,
    now: datetime,
    stored: Callable[[], None],
) -> UploadOutcome:
    """The rows and events of one stored distribution; ``stored()`` waits for its blob and
    raises if it could not be stored."""
    assert actor.user is not None
    state = lock_index()
    existing = _duplicate(request)  # again, under the lock: a concurrent upload may have won
    if existing is not None:
        return UploadOutcome(file=existing, created=False)
    project, role = project_and_role(dist.name, actor.user, for_update=True)
    projects_changed = project is None
    if project is None:
        rival = similar_project(confusable_key(dist.metadata.name))
        if rival is not None:  # created meanwhile by a concurrent upload
            raise bad_request(
                "dist.name.confusable",
                f"The name '{dist.metadata.name}' is too similar to the existing project "
                f"'{rival}'.",
                field="name",
            )
        reservation = name_reserved_against(dist.name, user=actor.user, now=now)
        if reservation is not None:  # a deleted project's name, kept for its former owners
            raise forbidden("project.name.reserved", reservation_message(reservation))
        if _creation_limits(actor):
            stored()  # a creation whose blob could not be stored is not counted (Redis keeps it)
            _count_project_creation(actor, now)  # under the index lock: exactly N per window
        serial = bump_serial(state, projects_changed=True)
        project = create_project(
            actor=actor,
            name=dist.metadata.name,
            owner=actor.user,
            serial=serial,
            now=now,
            reservation_checked=True,
        )
    elif role not in UPLOAD_ROLES:
        raise forbidden(
            "project.forbidden",
            f"The user '{actor.user.username}' isn't allowed to upload to project "
            f"'{project.name}'.",
        )
    _check_project_size(project, dist.size)

    release, has_sdist = (None, False) if projects_changed else _release(project, dist)
    if release is None:
        metadata = dist.metadata
        release = Release(
            project=project,
            version=dist.version,
            canonical_version=dist.canonical_version,
            is_prerelease=Version(dist.version).is_prerelease,
            created=now,
            summary=metadata.summary[:512],
            requires_python=dist.requires_python or "",
            metadata=metadata.as_dict(),
        )
        rows.insert(release)
        record(
            "release.created",
            actor=actor,
            project=project,
            payload={"version": release.version, "canonical_version": release.canonical_version},
            now=now,
        )
    elif has_sdist:
        raise bad_request("upload.second-sdist", "Only one sdist may be uploaded per release.")

    file = File(
        project=project,
        release=release,
        filename=dist.filename,
        packagetype=dist.packagetype,
        python_version=dist.python_version,
        size=dist.size,
        sha256=dist.hashes.sha256,
        blake2_256=dist.hashes.blake2b_256,
        md5=dist.hashes.md5,
        upload_time=now,
        requires_python=dist.requires_python or "",
        metadata_sha256=dist.metadata_sha256 if dist.packagetype == "bdist_wheel" else "",
        comment_text=request.comment,
        yanked=release.yanked,  # a file added to a yanked release is yanked with it
        yanked_reason=release.yanked_reason,
        storage_key=key,
        uploaded_by=actor.user,
    )
    rows.insert(file)
    rows.insert(
        FilenameRecord(filename=dist.filename, project_name=project.normalized_name, created=now)
    )
    record(
        "file.uploaded",
        actor=actor,
        project=project,
        payload={
            "filename": file.filename,
            "version": release.version,
            "packagetype": file.packagetype,
            "size": file.size,
            "sha256": file.sha256,
            "blake2_256": file.blake2_256,
        },
        now=now,
    )
    serial = (
        bump_serial(state, project=project.normalized_name)
        if not projects_changed
        else state.serial
    )
    rows.execute(
        "UPDATE projects_project SET serial = %s, total_size = %s WHERE id = %s",
        (serial, project.total_size + dist.size, project.pk),
    )
    return UploadOutcome(file=file, created=True)


def _release(project: Project, dist: ValidatedDistribution) -> tuple[Release | None, bool]:
    """The release ``dist`` belongs to, if it exists; and for an sdist, whether the release has
    one already (in the same statement)."""
    where = "WHERE project_id = %s AND canonical_version = %s ORDER BY id LIMIT 1"
    if dist.packagetype != "sdist":
        return rows.get(Release, where, [project.pk, dist.canonical_version]), False
    found = rows.get_with(Release, _HAS_SDIST, where, [project.pk, dist.canonical_version])
    if found is None:
        return None, False
    release, (has_sdist,) = found
    return release, has_sdist is not None


_HAS_SDIST = (
    '(SELECT 1 FROM projects_file WHERE release_id = "projects_release".id'
    " AND packagetype = 'sdist' LIMIT 1)"
)


def prohibit_name(*, actor: Actor, name: str, comment: str = "", now: datetime) -> ProhibitedName:
    """Refuse ``name`` (and its normalized spellings) to every new project from now on."""
    if not is_valid_name(name):
        raise ValueError(f"{name!r} is not a valid project name")
    normalized = normalize_name(name)
    with transaction.atomic():
        row, created = ProhibitedName.objects.get_or_create(
            normalized_name=normalized,
            defaults={"comment": comment[:500], "created": now, "created_by": actor.label},
        )
        if created:
            record(
                "policy.name.prohibited",
                actor=actor,
                project_name=normalized,
                payload={"comment": comment[:500]},
                now=now,
            )
    return row


def allow_name(*, actor: Actor, name: str, now: datetime) -> None:
    """Take ``name`` off the operators' prohibited list (the built-in list stays)."""
    normalized = normalize_name(name)
    with transaction.atomic():
        deleted, _ = ProhibitedName.objects.filter(normalized_name=normalized).delete()
        if deleted:
            record("policy.name.allowed", actor=actor, project_name=normalized, now=now)
