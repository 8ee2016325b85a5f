"""API tokens: one row per token holding its random root key.

The token itself is a macaroon (``bastion.security.macaroons``) whose identifier is this row's
id. Deleting the row revokes the token at once. ``caveats`` are the restrictions bastion issued;
they are re-applied on every verification, so the database stays authoritative.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    key = models.BinaryField(max_length=32)
    caveats = models.JSONField(default=list)
    project_names = models.JSONField(default=list)  # display copy of the scope; [] = user-wide
    created = models.DateTimeField(default=timezone.now)
    expires = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)
    # keyed hashes of the addresses the token was used from (for "used from a new address")
    seen_addresses = models.JSONField(default=list, blank=True)
    # the coarse address (/24, /48) of the last use, shown to the owner ("last used from")
    last_used_from = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        db_table = "tokens_api_token"
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="token_unique_user_name")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"

    @property
    def scope(self) -> str:
        if not self.project_names:
            return "user"
        return "projects: " + ", ".join(self.project_names)
