"""Reads with visibility rules for projects, releases and files."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import OuterRef, QuerySet, Subquery

from bastion import rows
from bastion.accounts.models import User
from bastion.core.names import normalize_name
from bastion.projects.models import File, Project, ProjectStatus, Release, Role, RoleName

UPLOAD_ROLES = (RoleName.OWNER, RoleName.MAINTAINER)


# The look-ups every upload makes are written in SQL: building an ORM query took ~200 µs, about
# ten times what the database takes to answer it (bench: a twine upload, in process).


def project_and_role(
    name: str, user: User, *, for_update: bool = False
) -> tuple[Project | None, str | None]:
    """The project named ``name`` (any spelling) and ``user``'s role on it (None: none), in
    one statement: an upload asks both before validating and again under the lock."""
    lock = " FOR UPDATE" if for_update and connection.features.has_select_for_update else ""
    found = rows.get_with(
        Project,
        _ROLE_OF_USER,
        "WHERE normalized_name = %s" + lock,
        [user.pk, normalize_name(name)],
    )
    if found is None:
        return None, None
    project, (role,) = found
    return project, None if role is None else str(role)


# The user's role on the project of the row (projects_project) being read.
_ROLE_OF_USER = (
    '(SELECT role_name FROM projects_role WHERE user_id = %s AND project_id = "projects_project".id'
    " ORDER BY id LIMIT 1)"
)


def similar_project(key: str) -> str | None:
    """The name of an existing project whose look-alike key is ``key`` (None if there is none).

    Asked twice per new project's upload (validation, then under the lock): written in SQL."""
    row = rows.fetch_one(
        "SELECT name FROM projects_project WHERE confusable_key = %s ORDER BY id LIMIT 1", (key,)
    )
    return None if row is None else str(row[0])


def visible_projects() -> QuerySet[Project]:
    """Projects listed by the index (PEP 792: quarantined projects are hidden)."""
    return Project.objects.exclude(status=ProjectStatus.QUARANTINED)


def role_of(user: User, project: Project) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT role_name FROM projects_role WHERE user_id = %s AND project_id = %s"
            " ORDER BY id LIMIT 1",
            (user.pk, project.pk),
        )
        row = cursor.fetchone()
    return None if row is None else str(row[0])


def releases_of(project: Project) -> list[Release]:
    return list(Release.objects.filter(project=project))


def files_of(project: Project) -> list[File]:
    if project.status == ProjectStatus.QUARANTINED:
        return []
    # Renderings need each file's release_id only: joining the release would load its metadata
    # (description included) once per file.
    return list(File.objects.filter(project=project).order_by("upload_time", "id"))


# -- the public pages (home, project, release and user pages) ---------------------------------


@dataclass(frozen=True)
class Uploader:
    """Who uploaded a file, from its ``file.uploaded`` audit event: a user and the token used."""

    username: str
    token_name: str


def recent_releases(limit: int) -> list[Release]:
    """The ``limit`` newest releases of listed projects, newest first (no metadata loaded).

    Newest by row id, the order releases are created in: the primary key index serves it,
    where ``created`` has none.
    """
    return list(
        Release.objects.exclude(project__status=ProjectStatus.QUARANTINED)
        .select_related("project")
        .defer("metadata")
        .order_by("-id")[:limit]
    )


def release_history(project: Project) -> list[Release]:
    """Every release of ``project``, highest version first; metadata left unloaded (one query)."""
    from bastion.index.rendering import version_key

    releases = Release.objects.filter(project=project).defer("metadata")
    return sorted(releases, key=lambda r: version_key(r.version), reverse=True)


def release_with_metadata(release: Release) -> Release:
    return Release.objects.get(pk=release.pk)


def release_files(release: Release) -> list[File]:
    """The files of one release, sdists first, by name; uploaders' usernames joined."""
    return list(
        File.objects.filter(release=release)
        .select_related("uploaded_by")
        .order_by("packagetype", "filename")
    )


def uploaders_of(project: Project, files: list[File]) -> dict[str, Uploader]:
    """file name -> who uploaded it and with which token, from the audit trail (one query).

    Files without an event (rows made outside the upload service) fall back to
    ``File.uploaded_by`` without a token name.
    """
    from bastion.audit.models import Event

    found: dict[str, Uploader] = {}
    if files:
        events = Event.objects.filter(
            kind="file.uploaded",
            project_id=project.pk,
            payload__filename__in=[file.filename for file in files],
        ).values_list("payload", "actor_username", "token_name")
        for payload, username, token_name in events:
            found[str(payload.get("filename"))] = Uploader(username, token_name)
    for file in files:
        if file.filename not in found and file.uploaded_by is not None:
            found[file.filename] = Uploader(file.uploaded_by.username, "")
    return found


def maintainers_of(project: Project) -> list[Role]:
    """Roles on ``project`` with their users: Owners first, then by username."""
    return list(
        Role.objects.filter(project=project, user__is_active=True)
        .select_related("user")
        .order_by("role_name", "user__username")
    )


def public_user(username: str) -> User | None:
    """An active account by its exact username (user pages show no private field of it)."""
    return User.objects.filter(username=username, is_active=True).first()


def projects_of_user(user: User) -> list[Role]:
    """``user``'s roles on listed projects, by project name, each project with ``summary``:
    its newest release's summary (one query)."""
    newest = Release.objects.filter(project=OuterRef("project")).order_by("-created", "-id")
    return list(
        Role.objects.filter(user=user)
        .exclude(project__status=ProjectStatus.QUARANTINED)
        .select_related("project")
        .annotate(summary=Subquery(newest.values("summary")[:1]))
        .order_by("project__normalized_name")
    )
