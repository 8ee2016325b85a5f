"""The SQLite backend converts a query's placeholders once per query text (bastion.sqlite)."""

from __future__ import annotations

import pytest
from django.db import connection, connections
from django.utils import timezone

from bastion.sqlite import base

pytestmark = pytest.mark.django_db


def test_the_embedded_database_uses_bastions_backend() -> None:
    assert connection.vendor == "sqlite"
    assert isinstance(connections["default"], base.DatabaseWrapper)
    with connection.cursor() as cursor:
        assert isinstance(cursor.cursor, base.SQLiteCursorWrapper)


def test_placeholders_and_escaped_percents_are_converted_as_django_does() -> None:
    base.qmark.cache_clear()
    with connection.cursor() as cursor:
        for _ in range(2):  # the second time from the kept conversion
            cursor.execute("SELECT %s, 'a%%b', %s", [1, "two"])
            assert cursor.fetchone() == (1, "a%b", "two")
        cursor.execute("SELECT %(x)s, 'c%%d'", {"x": 3})  # named: Django's own conversion
        assert cursor.fetchone() == (3, "c%d")
    info = base.qmark.cache_info()
    assert (info.hits, info.misses) == (1, 1)
    assert base.qmark("a = %s AND b LIKE '%%s'") == "a = ? AND b LIKE '%s'"


def test_upload_statements_run_on_the_driver_unless_queries_are_observed(monkeypatch) -> None:
    """``bastion.rows`` runs its statements on SQLite's own connection (Django's cursor wrapper
    cost about half of each), except when something observes the queries."""
    from django.test.utils import CaptureQueriesContext

    from bastion import rows

    django_cursors: list[int] = []
    real_cursor = base.DatabaseWrapper.cursor

    def counted_cursor(self):  # type: ignore[no-untyped-def]
        django_cursors.append(1)
        return real_cursor(self)

    monkeypatch.setattr(base.DatabaseWrapper, "cursor", counted_cursor)
    assert rows.fetch_one("SELECT %s, 'a%%b'", [1]) == (1, "a%b")
    assert rows.fetch_all("SELECT %s UNION ALL SELECT %s", [1, 2]) == [(1,), (2,)]
    assert rows.execute("UPDATE projects_index_state SET serial = serial WHERE id = %s", [1]) == 1
    assert django_cursors == []
    with CaptureQueriesContext(connection) as captured:
        assert rows.fetch_one("SELECT %s", [5]) == (5,)
    assert [q["sql"] for q in captured.captured_queries] == ["SELECT 5"]
    assert django_cursors == [1]


def test_errors_on_the_driver_are_djangos() -> None:
    from django.db import IntegrityError, OperationalError, transaction
    from django.db.transaction import TransactionManagementError

    from bastion import rows
    from bastion.projects.models import Project

    with pytest.raises(OperationalError):
        rows.fetch_one("SELECT * FROM no_such_table")
    first = Project(name="dup", normalized_name="dup", serial=1, created=timezone.now())
    rows.insert(first)
    with pytest.raises(IntegrityError):
        rows.insert(Project(name="dup", normalized_name="dup", serial=2, created=timezone.now()))
    # A transaction broken by an error is refused further statements, as Django's cursor does.
    with transaction.atomic():
        with pytest.raises(IntegrityError), transaction.atomic(savepoint=False):
            rows.insert(
                Project(name="dup", normalized_name="dup", serial=3, created=timezone.now())
            )
        with pytest.raises(TransactionManagementError):
            rows.fetch_one("SELECT 1")
