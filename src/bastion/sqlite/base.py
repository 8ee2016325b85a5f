"""Django's SQLite backend, except that a query's ``%s`` placeholders are converted to ``?``
once per query text rather than on every execution.

Django's SQLite cursor rewrites every query with a regular expression behind a lazy object
(about 5 µs for an INSERT of the audit trail), and an upload runs some 25 queries whose texts
repeat from one upload to the next. The conversion is a pure function of the text, so its
results are kept (least recently used, bounded). Everything else is Django's.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.db.backends.sqlite3 import base

_CONVERTED_QUERIES = 2048  # query texts kept (distinct IN-list lengths make new ones)


@functools.lru_cache(maxsize=_CONVERTED_QUERIES)
def qmark(query: str) -> str:
    """``query`` with Django's ``%s`` placeholders as SQLite's ``?`` (and ``%%`` as ``%``)."""
    return base.FORMAT_QMARK_REGEX.sub("?", query).replace("%%", "%")


class SQLiteCursorWrapper(base.SQLiteCursorWrapper):
    def convert_query(self, query: str, *, param_names: Sequence[str] | None = None) -> str:
        if param_names is None:  # "format" style, as Django's own queries
            return qmark(query)
        return str(super().convert_query(query, param_names=param_names))


class DatabaseWrapper(base.DatabaseWrapper):
    def create_cursor(self, name: Any = None) -> Any:
        return self.connection.cursor(factory=SQLiteCursorWrapper)
