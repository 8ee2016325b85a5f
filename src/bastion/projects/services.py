"""State changes for projects, releases, files and roles.

Every service takes the acting principal and runs inside the caller's transaction where one is
needed for atomicity (the upload service composes them in one transaction).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from bastion import rows
from bastion.accounts.models import User
from bastion.actors import Actor
from bastion.audit.services import record
from bastion.core.names import confusable_key, is_valid_name, normalize_name
from bastion.projects.errors import (
    ConfirmationMismatch,
    Conflict,
    InvalidProjectName,
    NotAllowed,
    NotFound,
)
from bastion.projects.models import (
    DeletedProject,
    File,
    IndexState,
    Invitation,
    Project,
    ProjectStatus,
    Release,
    Role,
    RoleName,
)

log = logging.getLogger(__name__)

# Who may do what (deny by default). Yanking is reversible and part of releasing, so the people
# who upload may do it; deletions cannot be undone and roles decide who can publish, so both are
# for Owners only. The operator (the command line) and superusers may do everything.
YANK_ROLES = frozenset({RoleName.OWNER, RoleName.MAINTAINER})
OWNER_ROLES = frozenset({RoleName.OWNER})
MAX_REASON_LENGTH = 1000


def lock_index() -> IndexState:
    """Take the index-wide change lock and return the state row (call inside a transaction).

    On PostgreSQL this is a row lock, so changes from every app node are serialised; on SQLite
    bastion opens write transactions IMMEDIATE, which serialises writers already.
    """
    # Every change takes it: written in SQL (the ORM took longer to build the query than the
    # database to answer it). SQLite has no FOR UPDATE, and needs none.
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    row = rows.fetch_one(
        "SELECT serial, projects_serial FROM projects_index_state WHERE id = 1" + lock
    )
    if row is None:  # created by migration 0002; only a flushed test database lacks it
        IndexState.objects.get_or_create(pk=1)
        return IndexState.objects.select_for_update().get(pk=1)
    return IndexState(pk=1, serial=row[0], projects_serial=row[1])


def bump_serial(
    state: IndexState, *, projects_changed: bool = False, project: str | None = None
) -> int:
    """Advance the index serial (and the project-list serial when that list changed); the
    pages of ``project`` (a normalized name) and of the list change with it."""
    from bastion.index import front

    if project is not None:
        front.changed(project)
    if projects_changed:
        front.changed(None)
    # The row is locked by lock_index(), so the values read there are current.
    state.serial += 1
    if projects_changed:
        state.projects_serial += 1
    rows.execute(
        "UPDATE projects_index_state SET serial = %s, projects_serial = %s WHERE id = %s",
        (state.serial, state.projects_serial, state.pk),
    )
    return state.serial


def create_project(
    *,
    actor: Actor,
    name: str,
    owner: User,
    serial: int,
    now: datetime,
    reservation_checked: bool = False,
) -> Project:
    """Create a project with ``owner`` as its Owner (inside the caller's transaction, under the
    index lock; ``reservation_checked``: the caller called ``name_reserved_against`` there)."""
    if not is_valid_name(name):
        raise InvalidProjectName(
            f"The name {name!r} is invalid: a project name must start and end with a letter or "
            "digit and contain only letters, digits, '.', '_' and '-'.",
        )
    normalized = normalize_name(name)
    reservation = (
        None if reservation_checked else name_reserved_against(normalized, user=owner, now=now)
    )
    if reservation is not None:
        raise NotAllowed(reservation_message(reservation), code="project.name.reserved")
    # Re-created by a former Owner: the reservation has done its job. One DELETE in SQL (no row
    # refers to a reservation): the ORM's delete collected related rows first, ~0.3 ms per new
    # project for a row that is nearly never there.
    rows.execute(
        f"DELETE FROM {DeletedProject._meta.db_table} WHERE normalized_name = %s",  # noqa: S608
        [normalized],
    )
    project = Project(
        name=name,
        normalized_name=normalized,
        confusable_key=confusable_key(name),
        serial=serial,
        created=now,
    )
    rows.insert(project)
    rows.insert(Role(user=owner, project=project, role_name=RoleName.OWNER, created=now))
    record("project.created", actor=actor, project=project, payload={"name": name}, now=now)
    record(
        "project.role.added",
        actor=actor,
        subject_user=owner,
        project=project,
        payload={"role": RoleName.OWNER, "user": owner.username},
        now=now,
    )
    return project


# --- hooks and helpers -----------------------------------------------------------------------


_metadata_hooks: list[Callable[[str], None]] = []


def on_metadata_changed(hook: Callable[[str], None]) -> None:
    """Register ``hook(normalized_name)`` to run on every ``metadata_changed``.

    For the signing app (it depends on this app, never the reverse): from its
    ``AppConfig.ready()``, ``on_metadata_changed(bastion.signing.services.targets_changed)``.
    """
    if hook not in _metadata_hooks:
        _metadata_hooks.append(hook)


def metadata_changed(project: Project) -> None:
    """Hook for signed repository metadata (TUF, PEP 458): the project's files changed.

    Called inside the transaction of every yank, un-yank and deletion, under the index lock and
    after the rows changed (a deleted project has no rows left; its name is passed all the same),
    so re-signed metadata commits atomically with the change. A no-op until the signing app
    registers its hook (``on_metadata_changed``).
    """
    for hook in _metadata_hooks:
        hook(project.normalized_name)


def _is_operator(actor: Actor) -> bool:
    """The command line, or a superuser acting through the web (behind 2FA)."""
    if actor.token is not None:
        return False
    if actor.user is None:
        return actor.via == "cli"
    return bool(actor.user.is_superuser)


def _require_role(actor: Actor, project: Project, allowed: Collection[str]) -> None:
    """Deny by default: API tokens only upload; users need one of the ``allowed`` roles."""
    if actor.token is not None:
        raise NotAllowed("API tokens can only upload; sign in to manage projects.")
    if _is_operator(actor):
        return
    user = actor.user
    if user is None or not user.is_active:
        raise NotAllowed("Sign in to manage projects.")
    role = Role.objects.filter(user=user, project=project).values_list("role_name", flat=True)
    current = role.first()
    if current is None:
        raise NotFound(f"There is no project named '{project.normalized_name}'.")
    if current not in allowed:
        raise NotAllowed(
            f"Only {' and '.join(sorted(allowed))}s of '{project.name}' may do this; "
            f"you are a {current}."
        )


def _touch(state: IndexState, project: Project, *, projects_changed: bool = False) -> int:
    """Advance the serials so every cached rendering of the project is stale at once."""
    serial = bump_serial(state, projects_changed=projects_changed, project=project.normalized_name)
    Project.objects.filter(pk=project.pk).update(serial=serial)
    project.serial = serial
    return serial


def _locked_project(project: Project) -> Project:
    """The project row re-read under the index lock (NotFound if deleted meanwhile)."""
    found = Project.objects.select_for_update().filter(pk=project.pk).first()
    if found is None:
        raise NotFound(f"There is no project named '{project.normalized_name}'.")
    return found


def _clean_reason(reason: str) -> str:
    return " ".join(reason.split())[:MAX_REASON_LENGTH]


def _owner_count(project: Project) -> int:
    return int(Role.objects.filter(project=project, role_name=RoleName.OWNER).count())


def _forget_blobs(keys: list[str]) -> None:
    """Remove deleted files' blobs (and PEP 658 metadata) from storage; runs after commit."""
    from bastion.storage import StorageError, blob_store, metadata_key

    store = blob_store()
    for key in keys:
        try:
            store.delete(key)
            store.delete(metadata_key(key))
        except StorageError as exc:  # pragma: no cover - the rows are gone; reported only
            log.error("could not remove the blob of a deleted file %s: %s", key, exc)


# --- deleted names ---------------------------------------------------------------------------


def name_reserved_against(
    normalized_name: str, *, user: User | None, now: datetime
) -> DeletedProject | None:
    """The reservation that forbids ``user`` to create a project named ``normalized_name``.

    None when the name is free for them: no reservation, an expired one, or they were an Owner
    of the deleted project. Call it under the index lock before creating a project.
    """
    name = normalize_name(normalized_name)
    # Nearly always none: one quick statement says so.
    if (
        rows.fetch_one("SELECT 1 FROM projects_deleted_project WHERE normalized_name = %s", (name,))
        is None
    ):
        return None
    reservation = DeletedProject.objects.filter(
        normalized_name=name, reserved_until__gt=now
    ).first()
    if reservation is None:
        return None
    if user is not None and user.pk in reservation.owner_ids:
        return None
    return reservation


def reservation_message(reservation: DeletedProject) -> str:
    until = reservation.reserved_until.strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"The name '{reservation.normalized_name}' belonged to a deleted project and is "
        f"reserved for its former owners until {until}."
    )


# --- collaborators ---------------------------------------------------------------------------


def _unknown_role(role_name: str) -> Conflict:
    return Conflict(f"Unknown role {role_name!r}.", code="project.role.invalid", field="role")


def invite_collaborator(
    *, actor: Actor, project: Project, username: str, role_name: str, now: datetime | None = None
) -> Invitation:
    """An Owner offers ``username`` a role; nothing changes until they accept."""
    now = now or timezone.now()
    if role_name not in RoleName.values:
        raise _unknown_role(role_name)
    with transaction.atomic():
        project = _locked_project(project)
        _require_role(actor, project, OWNER_ROLES)
        user = User.objects.filter(username__iexact=username.strip(), is_active=True).first()
        if user is None:
            raise NotFound(f"There is no user named '{username.strip()}'.", field="username")
        if Role.objects.filter(project=project, user=user).exists():
            raise Conflict(
                f"'{user.username}' already has a role on '{project.name}'.", field="username"
            )
        if Invitation.objects.filter(project=project, user=user).exists():
            raise Conflict(
                f"'{user.username}' is already invited to '{project.name}'.", field="username"
            )
        invitation = Invitation.objects.create(
            project=project,
            user=user,
            role_name=role_name,
            invited_by=actor.user,
            created=now,
        )
        record(
            "project.invitation.created",
            actor=actor,
            project=project,
            subject_user=user,
            payload={"user": user.username, "role": role_name},
            now=now,
        )
    return invitation


def _own_invitation(actor: Actor, invitation: Invitation) -> Invitation:
    if actor.token is not None or actor.user is None:
        raise NotAllowed("Sign in to answer an invitation.")
    found = (
        Invitation.objects.select_related("project", "user")
        .filter(pk=invitation.pk, user=actor.user)
        .first()
    )
    if found is None:
        raise NotFound("There is no such invitation.")
    return found


def accept_invitation(*, actor: Actor, invitation: Invitation, now: datetime | None = None) -> Role:
    """The invited user takes the role (their uploads are allowed from now on)."""
    now = now or timezone.now()
    with transaction.atomic():
        state = lock_index()
        invitation = _own_invitation(actor, invitation)
        project = _locked_project(invitation.project)
        user = invitation.user
        role = Role.objects.create(
            project=project, user=user, role_name=invitation.role_name, created=now
        )
        invitation.delete()
        payload = {"user": user.username, "role": role.role_name}
        record(
            "project.invitation.accepted",
            actor=actor,
            project=project,
            subject_user=user,
            payload=payload,
            now=now,
        )
        record(
            "project.role.added",
            actor=actor,
            project=project,
            subject_user=user,
            payload=payload,
            now=now,
        )
        _touch(state, project)  # the PyPI JSON lists the roles
    return role


def decline_invitation(
    *, actor: Actor, invitation: Invitation, now: datetime | None = None
) -> None:
    now = now or timezone.now()
    with transaction.atomic():
        invitation = _own_invitation(actor, invitation)
        invitation.delete()
        record(
            "project.invitation.declined",
            actor=actor,
            project=invitation.project,
            subject_user=invitation.user,
            payload={"user": invitation.user.username, "role": invitation.role_name},
            now=now,
        )


def revoke_invitation(
    *, actor: Actor, project: Project, username: str, now: datetime | None = None
) -> None:
    """An Owner withdraws a pending invitation."""
    now = now or timezone.now()
    with transaction.atomic():
        project = _locked_project(project)
        _require_role(actor, project, OWNER_ROLES)
        invitation = (
            Invitation.objects.select_related("user")
            .filter(project=project, user__username=username)
            .first()
        )
        if invitation is None:
            raise NotFound(f"'{username}' has no pending invitation.", field="username")
        invitation.delete()
        record(
            "project.invitation.revoked",
            actor=actor,
            project=project,
            subject_user=invitation.user,
            payload={"user": invitation.user.username, "role": invitation.role_name},
            now=now,
        )


def _collaborator(project: Project, username: str) -> Role:
    role = Role.objects.select_related("user").filter(project=project, user__username=username)
    found = role.first()
    if found is None:
        raise NotFound(f"'{username}' has no role on '{project.name}'.", field="username")
    return found


def change_role(
    *,
    actor: Actor,
    project: Project,
    username: str,
    role_name: str,
    now: datetime | None = None,
) -> Role:
    """An Owner changes a collaborator's role; the last Owner cannot be demoted."""
    now = now or timezone.now()
    if role_name not in RoleName.values:
        raise _unknown_role(role_name)
    with transaction.atomic():
        state = lock_index()
        project = _locked_project(project)
        _require_role(actor, project, OWNER_ROLES)
        role = _collaborator(project, username)
        if role.role_name == role_name:
            return role
        if role.role_name == RoleName.OWNER and _owner_count(project) == 1:
            raise Conflict(
                f"'{username}' is the last Owner of '{project.name}': make someone else an "
                "Owner first.",
                code="project.last-owner",
            )
        previous = role.role_name
        role.role_name = role_name
        role.save(update_fields=["role_name"])
        record(
            "project.role.changed",
            actor=actor,
            project=project,
            subject_user=role.user,
            payload={"user": role.user.username, "role": role_name, "previous": previous},
            now=now,
        )
        _touch(state, project)
    return role


def remove_collaborator(
    *, actor: Actor, project: Project, username: str, now: datetime | None = None
) -> None:
    """An Owner removes a collaborator, or a collaborator leaves; never the last Owner."""
    now = now or timezone.now()
    with transaction.atomic():
        state = lock_index()
        project = _locked_project(project)
        leaving = actor.user is not None and actor.user.username == username
        if not leaving:
            _require_role(actor, project, OWNER_ROLES)
        elif actor.token is not None:
            raise NotAllowed("API tokens can only upload; sign in to manage projects.")
        role = _collaborator(project, username)
        if role.role_name == RoleName.OWNER and _owner_count(project) == 1:
            raise Conflict(
                f"'{username}' is the last Owner of '{project.name}': add another Owner first, "
                "or delete the project.",
                code="project.last-owner",
            )
        role.delete()
        record(
            "project.role.removed",
            actor=actor,
            project=project,
            subject_user=role.user,
            payload={"user": role.user.username, "role": role.role_name, "left": leaving},
            now=now,
        )
        _touch(state, project)


def add_role(
    *, actor: Actor, project: Project, user: User, role_name: str, now: datetime | None = None
) -> Role:
    """Give ``user`` a role without an invitation: operators only (the admin, scripts)."""
    now = now or timezone.now()
    if role_name not in RoleName.values:
        raise _unknown_role(role_name)
    if not _is_operator(actor):
        raise NotAllowed("Only operators add roles directly; Owners invite.")
    with transaction.atomic():
        state = lock_index()
        project = _locked_project(project)
        role, created = Role.objects.update_or_create(
            project=project, user=user, defaults={"role_name": role_name}
        )
        Invitation.objects.filter(project=project, user=user).delete()
        record(
            "project.role.added" if created else "project.role.changed",
            actor=actor,
            subject_user=user,
            project=project,
            payload={"role": role_name, "user": user.username},
            now=now,
        )
        _touch(state, project)
    return role


# --- yanking (PEP 592) -----------------------------------------------------------------------


def _locked_release(release: Release) -> Release:
    found = Release.objects.select_for_update().select_related("project").filter(pk=release.pk)
    row = found.first()
    if row is None:
        raise NotFound(f"There is no release {release.version}.")
    return row


def yank_release(
    *, actor: Actor, release: Release, reason: str = "", now: datetime | None = None
) -> bool:
    """Mark the release and every file of it yanked (PEP 592), with an optional reason.

    Installers skip a yanked release unless it is pinned exactly (``==``). Idempotent: yanking
    again with the same reason changes nothing and returns False; a new reason replaces the old.
    """
    now = now or timezone.now()
    reason = _clean_reason(reason)
    with transaction.atomic():
        state = lock_index()
        release = _locked_release(release)
        project = release.project
        _require_role(actor, project, YANK_ROLES)
        files = File.objects.filter(release=release)
        unchanged = (
            release.yanked
            and release.yanked_reason == reason
            and not files.exclude(yanked=True, yanked_reason=reason).exists()
        )
        if unchanged:
            return False
        previous = release.yanked_reason if release.yanked else None
        Release.objects.filter(pk=release.pk).update(yanked=True, yanked_reason=reason)
        files.update(yanked=True, yanked_reason=reason)
        release.yanked, release.yanked_reason = True, reason
        payload: dict[str, object] = {"version": release.version, "reason": reason}
        if previous is not None:
            payload["previous_reason"] = previous
        record("release.yanked", actor=actor, project=project, payload=payload, now=now)
        _touch(state, project)
        metadata_changed(project)
    return True


def unyank_release(*, actor: Actor, release: Release, now: datetime | None = None) -> bool:
    """Undo a yank: installers consider the release again. False if it was not yanked."""
    now = now or timezone.now()
    with transaction.atomic():
        state = lock_index()
        release = _locked_release(release)
        project = release.project
        _require_role(actor, project, YANK_ROLES)
        files = File.objects.filter(release=release)
        if not release.yanked and not files.filter(yanked=True).exists():
            return False
        Release.objects.filter(pk=release.pk).update(yanked=False, yanked_reason="")
        files.update(yanked=False, yanked_reason="")
        release.yanked, release.yanked_reason = False, ""
        record(
            "release.unyanked",
            actor=actor,
            project=project,
            payload={"version": release.version},
            now=now,
        )
        _touch(state, project)
        metadata_changed(project)
    return True


# --- deletions -------------------------------------------------------------------------------
# The caller (a web view) checks a recent reauthentication first; the services check roles.


def _confirm(expected: str, typed: str | None) -> None:
    """A deletion proceeds only when the person typed exactly what is deleted (when asked)."""
    if typed is not None and typed.strip() != expected:
        raise ConfirmationMismatch(
            f"Type '{expected}' exactly to confirm the deletion.", field="confirm"
        )


def _file_payload(file: File) -> dict[str, object]:
    return {
        "filename": file.filename,
        "version": file.release.version,
        "size": file.size,
        "sha256": file.sha256,
        "blake2_256": file.blake2_256,
    }


def delete_file(
    *, actor: Actor, file: File, confirm: str | None = None, now: datetime | None = None
) -> None:
    """Delete one file (Owners). Its name stays used forever (``FilenameRecord``); the blob is
    removed from storage once the deletion is committed."""
    now = now or timezone.now()
    with transaction.atomic():
        state = lock_index()
        found = File.objects.select_related("project", "release").filter(pk=file.pk).first()
        if found is None:
            raise NotFound(f"There is no file named '{file.filename}'.")
        project = _locked_project(found.project)
        _require_role(actor, project, OWNER_ROLES)
        _confirm(found.filename, confirm)
        payload = _file_payload(found)
        key = found.storage_key
        found.delete()
        Project.objects.filter(pk=project.pk).update(total_size=F("total_size") - found.size)
        record("file.deleted", actor=actor, project=project, payload=payload, now=now)
        _touch(state, project)
        metadata_changed(project)
        transaction.on_commit(lambda: _forget_blobs([key]))


def delete_release(
    *, actor: Actor, release: Release, confirm: str | None = None, now: datetime | None = None
) -> None:
    """Delete a release and all its files (Owners); file names stay used forever."""
    now = now or timezone.now()
    with transaction.atomic():
        state = lock_index()
        release = _locked_release(release)
        project = _locked_project(release.project)
        _require_role(actor, project, OWNER_ROLES)
        _confirm(release.version, confirm)
        files = list(File.objects.filter(release=release))
        keys = [f.storage_key for f in files]
        size = sum(f.size for f in files)
        release.delete()  # cascades to the files
        Project.objects.filter(pk=project.pk).update(total_size=F("total_size") - size)
        record(
            "release.deleted",
            actor=actor,
            project=project,
            payload={
                "version": release.version,
                "files": sorted(f.filename for f in files),
            },
            now=now,
        )
        _touch(state, project)
        metadata_changed(project)
        transaction.on_commit(lambda: _forget_blobs(keys))


def delete_project(
    *, actor: Actor, project: Project, confirm: str | None = None, now: datetime | None = None
) -> DeletedProject:
    """Delete a project with its releases, files, roles and invitations (Owners).

    Its file names stay used forever; its name is reserved for its former Owners for
    ``BASTION_DELETED_PROJECT_RESERVATION_DAYS`` (others cannot create it meanwhile).
    """
    now = now or timezone.now()
    days = settings.BASTION.deleted_project_reservation_days
    with transaction.atomic():
        state = lock_index()
        project = _locked_project(project)
        _require_role(actor, project, OWNER_ROLES)
        _confirm(project.name, confirm)
        owners = sorted(
            Role.objects.filter(project=project, role_name=RoleName.OWNER).values_list(
                "user_id", flat=True
            )
        )
        keys = list(File.objects.filter(project=project).values_list("storage_key", flat=True))
        counts = {
            "releases": Release.objects.filter(project=project).count(),
            "files": len(keys),
        }
        reservation, _ = DeletedProject.objects.update_or_create(
            normalized_name=project.normalized_name,
            defaults={
                "name": project.name,
                "owner_ids": owners,
                "deleted_at": now,
                "reserved_until": now + timedelta(days=days),
            },
        )
        record(
            "project.deleted",
            actor=actor,
            project=project,
            payload={
                "name": project.name,
                **counts,
                "reserved_until": reservation.reserved_until.isoformat(),
            },
            now=now,
        )
        bump_serial(state, projects_changed=True, project=project.normalized_name)
        project.delete()  # cascades: releases, files, roles, invitations, cached pages
        metadata_changed(project)
        transaction.on_commit(lambda: _forget_blobs(keys))
    return reservation


# --- project status (PEP 792), for operators -------------------------------------------------


def set_project_status(
    *,
    actor: Actor,
    project: Project,
    status: str,
    reason: str = "",
    now: datetime | None = None,
) -> bool:
    """Mark a project active, archived, quarantined or deprecated (PEP 792); operators only.

    Quarantine hides the project from the index and its files from its page; archived and
    quarantined projects refuse uploads. Returns False when nothing changed.
    """
    now = now or timezone.now()
    if status not in ProjectStatus.values:
        raise Conflict(f"Unknown project status {status!r}.", field="status")
    if not _is_operator(actor):
        raise NotAllowed("Only operators change a project's status.")
    reason = _clean_reason(reason)
    with transaction.atomic():
        state = lock_index()
        project = _locked_project(project)
        previous = project.status
        if previous == status and project.status_reason == reason:
            return False
        Project.objects.filter(pk=project.pk).update(status=status, status_reason=reason)
        project.status, project.status_reason = status, reason
        record(
            "project.status.changed",
            actor=actor,
            project=project,
            payload={"status": status, "previous": previous, "reason": reason},
            now=now,
        )
        quarantined = ProjectStatus.QUARANTINED
        _touch(state, project, projects_changed=quarantined in (status, previous))
        metadata_changed(project)
    return True
