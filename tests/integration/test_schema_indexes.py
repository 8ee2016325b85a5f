"""Which columns are indexed: those reads look rows up by, and no others (an upload writes each
index of the tables it inserts into; migrations audit 0002 and projects 0006)."""

from __future__ import annotations

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def _indexed(table: str) -> set[str]:
    """The columns of ``table`` with a single-column index that enforces nothing."""
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, table)
    return {
        info["columns"][0]
        for info in found.values()
        if info["index"]
        and not info["unique"]
        and not info["primary_key"]
        and len(info["columns"]) == 1
    }


def test_events_are_indexed_by_what_the_history_pages_look_up() -> None:
    indexed = _indexed("audit_event")
    # the account's history (actor or subject), the project's (id or name), retention (created)
    assert {"actor_user_id", "subject_user_id", "project_id", "project_name", "created"} <= indexed
    assert not {"kind", "token_id"} & indexed


def test_files_are_not_indexed_by_sha256_alone() -> None:
    indexed = _indexed("projects_file")
    assert {"project_id", "release_id"} <= indexed
    assert "sha256" not in indexed


def test_dropping_an_index_keeps_the_table_and_comes_back_reversed(transactional_db) -> None:
    """The migration drops the index itself (no table rebuild: the rows keep their ids) and,
    migrated back, creates it again."""
    from django.core.management import call_command
    from django.utils import timezone

    from bastion.actors import Actor
    from bastion.audit.models import Event
    from bastion.audit.queries import verify_chain
    from bastion.audit.services import record_now

    for name in ("one", "two"):
        record_now(
            "policy.name.prohibited", actor=Actor.operator(), project_name=name, now=timezone.now()
        )
    before = list(Event.objects.values_list("id", "kind", "hash"))
    assert len(before) == 2
    try:
        call_command("migrate", "audit", "0001", verbosity=0)
        assert {"kind", "token_id"} <= _indexed("audit_event")
    finally:
        call_command("migrate", "audit", verbosity=0)
    assert not {"kind", "token_id"} & _indexed("audit_event")
    assert list(Event.objects.values_list("id", "kind", "hash")) == before
    assert verify_chain() == (2, None)
