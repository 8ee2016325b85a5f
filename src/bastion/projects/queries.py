"""Reads with visibility rules for projects, releases and files."""

from __future__ import annotations

from django.db.models import QuerySet

from bastion.accounts.models import User
from bastion.core.names import normalize_name
from bastion.projects.models import File, Project, ProjectStatus, Release, Role, RoleName

UPLOAD_ROLES = (RoleName.OWNER, RoleName.MAINTAINER)


def project_by_name(name: str) -> Project | None:
    return Project.objects.filter(normalized_name=normalize_name(name)).first()


def similar_project(key: str) -> str | None:
    """The name of an existing project whose look-alike key is ``key`` (None if there is none)."""
    return Project.objects.filter(confusable_key=key).values_list("name", flat=True).first()


def visible_projects() -> QuerySet[Project]:
    """Projects listed by the index (PEP 792: quarantined projects are hidden)."""
    return Project.objects.exclude(status=ProjectStatus.QUARANTINED)


def role_of(user: User, project: Project) -> str | None:
    role = Role.objects.filter(user=user, project=project).values_list("role_name", flat=True)
    return role.first()


def can_upload(user: User, project: Project) -> bool:
    return role_of(user, project) in UPLOAD_ROLES


def releases_of(project: Project) -> list[Release]:
    return list(Release.objects.filter(project=project))


def files_of(project: Project) -> list[File]:
    if project.status == ProjectStatus.QUARANTINED:
        return []
    return list(
        File.objects.filter(project=project).select_related("release").order_by("upload_time", "id")
    )
