"""Signed repository metadata (TUF, PEP 458), stored in the database so every node serves the same.

Private keys are never stored here: only signed metadata, the targets it lists and the simple-page
bytes it signs (see docs/adr/0005-tuf-key-layout.md).
"""

from __future__ import annotations

from django.db import models


class SignedMetadata(models.Model):
    """One signed version of one role: ``<version>.<role>.json`` (``timestamp.json``: the latest).

    Root versions are kept forever (clients walk them one by one); other superseded versions are
    garbage-collected ``BASTION_TUF_GC_GRACE`` after ``superseded`` (PEP 458: ~1 hour).
    """

    role = models.CharField(max_length=64)
    version = models.PositiveBigIntegerField()
    body = models.BinaryField()
    expires = models.DateTimeField()
    created = models.DateTimeField()
    superseded = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["role", "version"], name="signing_role_version")
        ]


class CurrentRole(models.Model):
    """The current version of each role: one row per role, updated with each new version."""

    role = models.CharField(max_length=64, primary_key=True)
    version = models.PositiveBigIntegerField()
    expires = models.DateTimeField(db_index=True)


class Target(models.Model):
    """A target as its hashed bin lists it: a distribution file or a simple project page."""

    path = models.CharField(max_length=500, unique=True)
    project = models.CharField(max_length=200, db_index=True)  # normalized name
    bin = models.PositiveIntegerField(db_index=True)
    length = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    blake2b_256 = models.CharField(max_length=64)

    class Meta:
        # Covers _bin_contents: a bin's rows come out of one index range, not scattered rows.
        indexes = [
            models.Index(
                fields=["bin", "path", "length", "sha256", "blake2b_256"],
                name="signing_target_bin_rows",
            )
        ]


class SignedPage(models.Model):
    """The exact bytes of a signed simple page, served as ``simple/<project>/<hash>.index.*``
    (``<hash>``: its blake2b-256, the first in python-tuf's sorted output, or sha256).

    Kept while a retained snapshot may name it: ``superseded`` + the grace period.
    """

    path = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    blake2b_256 = models.CharField(max_length=64, db_index=True)
    body = models.BinaryField()
    created = models.DateTimeField()
    superseded = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["path", "sha256"], name="signing_page_path_sha256")
        ]


class SignedProject(models.Model):
    """The project serial the targets were last signed at; refresh re-signs where it lags."""

    project = models.CharField(max_length=200, primary_key=True)  # normalized name
    serial = models.BigIntegerField()


class SigningState(models.Model):
    """A single row: every change up to this index serial (``projects_index_state.serial``)
    is signed. Uploads leave their signing to the next round (``services.sign_changes``): a
    worker's background signer shortly after, or the next read of ``timestamp.json``."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    serial = models.BigIntegerField(default=0)

    class Meta:
        db_table = "signing_state"
