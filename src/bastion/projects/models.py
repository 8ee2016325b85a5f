"""Projects, releases, files and roles: the index's own data.

Invariants kept here:
- a project is identified by its PEP 503 normalized name; the display name is kept apart;
- a release is identified by its canonical version, so ``1.0`` and ``1.0.0`` are one release;
- a file name is unique across the whole index, and a name once used is never used again
  (``FilenameRecord`` outlives the file);
- ``serial`` is bumped in the transaction of every change and keys the cached renderings.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ProjectStatus(models.TextChoices):
    """PEP 792 project status markers."""

    ACTIVE = "active"
    ARCHIVED = "archived"
    QUARANTINED = "quarantined"
    DEPRECATED = "deprecated"


class IndexState(models.Model):
    """A single row: the index-wide change counter (PyPI's "last serial").

    ``serial`` increases on every change; ``projects_serial`` only when the set of visible
    projects changes (it keys the cached ``/simple/`` root page). Updating this row also
    serialises concurrent changes on PostgreSQL (row lock).
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    serial = models.BigIntegerField(default=0)
    projects_serial = models.BigIntegerField(default=0)

    class Meta:
        db_table = "projects_index_state"


class Project(models.Model):
    name = models.CharField(max_length=200)
    normalized_name = models.CharField(max_length=200, unique=True)
    # bastion.core.names.confusable_key(name): look-alike names collide here (too similar)
    confusable_key = models.CharField(max_length=200, db_index=True, default="")
    created = models.DateTimeField(default=timezone.now)
    status = models.CharField(
        max_length=16, choices=ProjectStatus.choices, default=ProjectStatus.ACTIVE
    )
    status_reason = models.TextField(blank=True, default="")
    serial = models.BigIntegerField(default=0, db_index=True)
    total_size = models.BigIntegerField(default=0)

    class Meta:
        db_table = "projects_project"

    def __str__(self) -> str:
        return self.name


class Release(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="releases")
    version = models.CharField(max_length=100)
    canonical_version = models.CharField(max_length=100)
    is_prerelease = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now)
    summary = models.CharField(max_length=512, blank=True, default="")
    requires_python = models.CharField(max_length=200, blank=True, default="")
    yanked = models.BooleanField(default=False)
    yanked_reason = models.TextField(blank=True, default="")
    # The core metadata of the release's first file, as parsed from the distribution itself
    # (bastion.core.dists.ReleaseMetadata.as_dict()).
    metadata = models.JSONField(default=dict)

    class Meta:
        db_table = "projects_release"
        constraints = [
            models.UniqueConstraint(
                fields=["project", "canonical_version"], name="release_unique_canonical_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.project.name} {self.version}"


class PackageType(models.TextChoices):
    SDIST = "sdist"
    WHEEL = "bdist_wheel"


class File(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="files")
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="files")
    filename = models.CharField(max_length=255, unique=True)
    packagetype = models.CharField(max_length=16, choices=PackageType.choices)
    python_version = models.CharField(max_length=100)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)  # looked up only with storage_key (unique)
    blake2_256 = models.CharField(max_length=64, unique=True)
    md5 = models.CharField(max_length=32)
    upload_time = models.DateTimeField(default=timezone.now)
    requires_python = models.CharField(max_length=200, blank=True, default="")
    # sha256 of the exact core-metadata bytes served at <file URL>.metadata (PEP 658); wheels only.
    metadata_sha256 = models.CharField(max_length=64, blank=True, default="")
    yanked = models.BooleanField(default=False)
    yanked_reason = models.TextField(blank=True, default="")
    comment_text = models.TextField(blank=True, default="")
    storage_key = models.CharField(max_length=400, unique=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        db_table = "projects_file"

    def __str__(self) -> str:
        return self.filename

    @property
    def has_metadata_file(self) -> bool:
        return bool(self.metadata_sha256)


class FilenameRecord(models.Model):
    """Every file name ever accepted; never deleted, so a name can never be reused."""

    filename = models.CharField(max_length=255, unique=True)
    project_name = models.CharField(max_length=200)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "projects_filename_record"


class RoleName(models.TextChoices):
    OWNER = "Owner"
    MAINTAINER = "Maintainer"


class Role(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="roles"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="roles")
    role_name = models.CharField(max_length=16, choices=RoleName.choices)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "projects_role"
        constraints = [
            models.UniqueConstraint(fields=["user", "project"], name="role_unique_user_project")
        ]


class RenderedPage(models.Model):
    """A cached rendering of a simple or JSON API page, valid while ``serial`` matches.

    ``project`` is null for index-wide pages (the ``/simple/`` root).
    """

    project = models.ForeignKey(
        Project, null=True, on_delete=models.CASCADE, related_name="rendered_pages"
    )
    kind = models.CharField(max_length=32)
    serial = models.BigIntegerField()
    etag = models.CharField(max_length=80)
    content_type = models.CharField(max_length=100)
    body = models.BinaryField()

    class Meta:
        db_table = "projects_rendered_page"
        constraints = [
            models.UniqueConstraint(fields=["project", "kind"], name="page_unique_project_kind"),
            models.UniqueConstraint(
                fields=["kind"],
                condition=models.Q(project__isnull=True),
                name="page_unique_global_kind",
            ),
        ]


class Invitation(models.Model):
    """A pending offer of a role on a project; accepting it creates the ``Role``.

    Accepted, declined and revoked invitations are deleted: the audit trail keeps their history.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invitations")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="project_invitations"
    )
    role_name = models.CharField(max_length=16, choices=RoleName.choices)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "projects_invitation"
        constraints = [
            models.UniqueConstraint(
                fields=["user", "project"], name="invitation_unique_user_project"
            )
        ]


class DeletedProject(models.Model):
    """The name of a deleted project, reserved for its former Owners until ``reserved_until``.

    Anyone else's upload that would create a project of this (normalized) name is refused until
    then (``BASTION_DELETED_PROJECT_RESERVATION_DAYS``); the former Owners may re-create it, which
    ends the reservation. ``owner_ids`` are user ids (a JSON list), kept without foreign keys so a
    reservation outlives the project's rows.
    """

    normalized_name = models.CharField(max_length=200, unique=True)
    name = models.CharField(max_length=200)
    owner_ids = models.JSONField(default=list)
    deleted_at = models.DateTimeField(default=timezone.now)
    reserved_until = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "projects_deleted_project"

    def __str__(self) -> str:
        return self.normalized_name
