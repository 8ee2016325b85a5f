"""State changes for projects, releases, files and roles.

Every service takes the acting principal and runs inside the caller's transaction where one is
needed for atomicity (the upload service composes them in one transaction).
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from bastion.accounts.models import User
from bastion.actors import Actor
from bastion.audit.services import record
from bastion.core.names import confusable_key, is_valid_name, normalize_name
from bastion.projects.errors import InvalidProjectName
from bastion.projects.models import IndexState, Project, Role, RoleName


def lock_index() -> IndexState:
    """Take the index-wide change lock and return the state row (call inside a transaction).

    On PostgreSQL this is a row lock, so changes from every app node are serialised; on SQLite
    bastion opens write transactions IMMEDIATE, which serialises writers already.
    """
    state = IndexState.objects.select_for_update().filter(pk=1).first()
    if state is None:  # created by migration 0002; only a flushed test database lacks it
        IndexState.objects.get_or_create(pk=1)
        state = IndexState.objects.select_for_update().get(pk=1)
    return state


def bump_serial(state: IndexState, *, projects_changed: bool = False) -> int:
    """Advance the index serial (and the project-list serial when that list changed)."""
    # The row is locked by lock_index(), so the values read there are current.
    state.serial += 1
    updates: dict[str, object] = {"serial": state.serial}
    if projects_changed:
        state.projects_serial += 1
        updates["projects_serial"] = state.projects_serial
    IndexState.objects.filter(pk=state.pk).update(**updates)
    return state.serial


def create_project(*, actor: Actor, name: str, owner: User, serial: int, now: datetime) -> Project:
    """Create a project with ``owner`` as its Owner (inside the caller's transaction)."""
    if not is_valid_name(name):
        raise InvalidProjectName(
            f"The name {name!r} is invalid: a project name must start and end with a letter or "
            "digit and contain only letters, digits, '.', '_' and '-'.",
        )
    project = Project.objects.create(
        name=name,
        normalized_name=normalize_name(name),
        confusable_key=confusable_key(name),
        serial=serial,
        created=now,
    )
    Role.objects.create(user=owner, project=project, role_name=RoleName.OWNER, created=now)
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


def add_role(*, actor: Actor, project: Project, user: User, role_name: str) -> Role:
    if role_name not in RoleName.values:
        raise ValueError(f"unknown role {role_name!r}")
    with transaction.atomic():
        role, created = Role.objects.update_or_create(
            project=project, user=user, defaults={"role_name": role_name}
        )
        record(
            "project.role.added" if created else "project.role.changed",
            actor=actor,
            subject_user=user,
            project=project,
            payload={"role": role_name, "user": user.username},
        )
    return role
