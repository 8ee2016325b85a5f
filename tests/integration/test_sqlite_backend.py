"""The SQLite backend converts a query's placeholders once per query text (bastion.sqlite)."""

from __future__ import annotations

import pytest
from django.db import connection, connections

from bastion.sqlite import base

pytestmark = pytest.mark.django_db


def test_the_embedded_database_uses_bastions_backend() -> None:
    assert connection.vendor == "sqlite"
    assert isinstance(connections["default"], base.DatabaseWrapper)
    with connection.cursor() as cursor:
        assert isinstance(cursor.cursor, base.SQLiteCursorWrapper)


def test_placeholders_and_escaped_percents_are_converted_as_django_does() -> None:
    base._qmark.cache_clear()
    with connection.cursor() as cursor:
        for _ in range(2):  # the second time from the kept conversion
            cursor.execute("SELECT %s, 'a%%b', %s", [1, "two"])
            assert cursor.fetchone() == (1, "a%b", "two")
        cursor.execute("SELECT %(x)s, 'c%%d'", {"x": 3})  # named: Django's own conversion
        assert cursor.fetchone() == (3, "c%d")
    info = base._qmark.cache_info()
    assert (info.hits, info.misses) == (1, 1)
    assert base._qmark("a = %s AND b LIKE '%%s'") == "a = ? AND b LIKE '%s'"
