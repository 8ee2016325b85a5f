"""The audit trail: append-only security events in one hash chain.

Events keep denormalized names and ids of their actor and subjects (no foreign keys), so they
survive the deletion of the user, token, project, release or file they describe. Only the
retention job changes an event (it empties ``ip_address`` and ``ip_salt``, which are outside
the hashed content).
"""

from __future__ import annotations

from django.db import models


class Event(models.Model):
    seq = models.BigIntegerField(unique=True)
    # Only the columns that a read looks events up by are indexed: an upload writes each index
    # (~8 µs of its commit per index page). By kind, events are only ever filtered after another
    # column (project, user) or in seq order; by token, not at all.
    kind = models.CharField(max_length=64)
    created = models.DateTimeField(db_index=True)
    # who
    actor_user_id = models.BigIntegerField(null=True, db_index=True)
    actor_username = models.CharField(max_length=150, blank=True, default="")
    credential = models.CharField(max_length=16)  # session, token, cli, anonymous
    token_id = models.CharField(max_length=36, blank=True, default="")
    token_name = models.CharField(max_length=100, blank=True, default="")
    # from where
    ip_address = models.CharField(max_length=45, blank=True, default="")
    ip_salt = models.CharField(max_length=32, blank=True, default="")
    ip_coarse = models.CharField(max_length=49, blank=True, default="")
    ip_commitment = models.CharField(max_length=64, blank=True, default="")
    user_agent = models.CharField(max_length=500, blank=True, default="")
    # about what
    subject_user_id = models.BigIntegerField(null=True, db_index=True)
    subject_username = models.CharField(max_length=150, blank=True, default="")
    project_id = models.BigIntegerField(null=True, db_index=True)
    project_name = models.CharField(max_length=200, blank=True, default="", db_index=True)
    payload = models.JSONField(default=dict)
    # the chain
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        db_table = "audit_event"
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"{self.seq} {self.kind}"


class ChainHead(models.Model):
    """A single row: the last event's sequence number and hash. Locked to append."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)

    class Meta:
        db_table = "audit_chain_head"
