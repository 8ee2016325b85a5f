"""Names the upload policy refuses for new projects, managed by operators (the admin).

They add to the built-in list (``bastion.core.names.PROHIBITED_NAMES``); the upload service
reads them into the validation policy for each new project.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class ProhibitedName(models.Model):
    normalized_name = models.CharField(max_length=200, unique=True)
    comment = models.CharField(max_length=500, blank=True, default="")
    created = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        db_table = "uploads_prohibited_name"
        ordering = ["normalized_name"]

    def __str__(self) -> str:
        return self.normalized_name


class RateCounter(models.Model):
    """One fixed-window counter of the upload API's limits (``bastion.uploads.limits``), when
    no Redis is configured: shared by every process and node through the database."""

    key = models.CharField(max_length=255)
    window_start = models.BigIntegerField()  # unix time
    count = models.IntegerField(default=0)

    class Meta:
        db_table = "uploads_rate_counter"
        constraints = [
            models.UniqueConstraint(fields=["key", "window_start"], name="rate_counter_key_window")
        ]
        indexes = [models.Index(fields=["window_start"], name="rate_counter_window")]
