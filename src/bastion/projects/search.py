"""Project search over names and summaries, on the index built by migration 0004.

The index (table ``projects_search``) holds one row per project, its name and the summary of
its newest release, kept up to date by database triggers:
- SQLite: an FTS5 table; ranking by ``bm25`` with the name weighted 10 to 1 over the summary.
- PostgreSQL: a weighted ``tsvector`` with a GIN index; ranking by ``ts_rank``.
- Other databases: a plain substring match on the normalized name.

Results are ranked in three tiers: the project whose normalized name is the query, then names
starting with it (shortest first), then the rest; by full-text rank within a tier. Every word
of the query must match (a name or summary word); the last word also matches as a prefix, so
``djan`` finds ``django``.

User text never reaches the query syntax: it is cut into letter-and-digit words here, and each
word is quoted for the backend (FTS5 string, tsquery lexeme), so ``"``, ``*``, ``AND``, ``(`` or
``NEAR`` are words or nothing, never operators.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from django.db import connection

from bastion.projects.models import ProjectStatus

__all__ = ["MAX_COUNT", "PER_PAGE", "SearchHit", "SearchPage", "search_projects", "search_terms"]

PER_PAGE: Final = 20
MAX_QUERY_CHARS: Final = 200  # longer queries are cut before parsing
MAX_TERMS: Final = 8
MAX_TERM_CHARS: Final = 64
MAX_PAGE: Final = 500  # deeper pages are not useful and would only cost an OFFSET
# Counting stops here: a word in most summaries would otherwise cost a pass over all of them.
MAX_COUNT: Final = MAX_PAGE * PER_PAGE

_WORD: Final = re.compile(r"[^\W_]+")  # letters and digits: what both tokenizers keep


@dataclass(frozen=True)
class SearchHit:
    name: str
    normalized_name: str
    summary: str


@dataclass(frozen=True)
class SearchPage:
    query: str
    terms: tuple[str, ...]
    hits: tuple[SearchHit, ...]
    total: int  # at most MAX_COUNT + 1: more than MAX_COUNT when ``total_is_capped``
    page: int
    per_page: int

    @property
    def total_is_capped(self) -> bool:
        return self.total > MAX_COUNT

    @property
    def max_count(self) -> int:
        return MAX_COUNT

    @property
    def pages(self) -> int:
        return min(MAX_PAGE, max(1, -(-min(self.total, MAX_COUNT) // self.per_page)))

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def first_index(self) -> int:
        """1-based rank of the first hit on this page (0 without hits)."""
        return (self.page - 1) * self.per_page + 1 if self.hits else 0

    @property
    def last_index(self) -> int:
        return (self.page - 1) * self.per_page + len(self.hits)


def search_terms(query: str) -> tuple[str, ...]:
    """The words of ``query`` that the index can match: lower-case letters and digits."""
    words = _WORD.findall(query[:MAX_QUERY_CHARS].lower())
    return tuple(word[:MAX_TERM_CHARS] for word in words[:MAX_TERMS])


def search_projects(query: str, *, page: int = 1, per_page: int = PER_PAGE) -> SearchPage:
    """One page of projects matching ``query``, best first. Two queries; never raises on input."""
    terms = search_terms(query)
    page = min(max(page, 1), MAX_PAGE)
    if not terms:
        return SearchPage(query, terms, (), 0, page, per_page)
    backend = _BACKENDS.get(connection.vendor, _Fallback)
    total = backend.count(terms, limit=MAX_COUNT + 1)
    page = min(page, SearchPage(query, terms, (), total, page, per_page).pages)
    hits = backend.hits(terms, limit=per_page, offset=(page - 1) * per_page) if total else ()
    return SearchPage(query, terms, tuple(hits), total, page, per_page)


def _name_key(terms: tuple[str, ...]) -> str:
    """The normalized project name the query spells: ``Django_REST`` and ``django rest`` alike."""
    return "-".join(terms)


def _rows(sql: str, params: list[str | int]) -> list[tuple[object, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _hits(rows: list[tuple[object, ...]]) -> list[SearchHit]:
    return [SearchHit(str(row[0]), str(row[1]), str(row[2] or "")) for row in rows]


# ORDER BY head: the exact name, then names starting with it (shortest first: closest), then
# the others; the backend's full-text rank follows. Parameters: name, name + "%", name + "%".
_TIER: Final = (
    "CASE WHEN p.normalized_name = %s THEN 0 WHEN p.normalized_name LIKE %s THEN 1 ELSE 2 END, "
    "CASE WHEN p.normalized_name LIKE %s THEN length(p.normalized_name) ELSE 0 END"
)


class _SQLite:
    @staticmethod
    def match(terms: tuple[str, ...]) -> str:
        # FTS5 strings: "word" is literal text whatever it spells; the last one is a prefix.
        # Words hold no '"' (letters and digits only), so no escaping is left to do.
        quoted = [f'"{term}"' for term in terms]
        quoted[-1] += "*"
        return " ".join(quoted)

    @classmethod
    def count(cls, terms: tuple[str, ...], *, limit: int) -> int:
        rows = _rows(
            "SELECT count(*) FROM (SELECT 1 FROM projects_search s "
            "JOIN projects_project p ON p.id = s.rowid "
            "WHERE projects_search MATCH %s AND p.status <> %s LIMIT %s)",
            [cls.match(terms), ProjectStatus.QUARANTINED.value, limit],
        )
        return _int(rows[0][0])

    @classmethod
    def hits(cls, terms: tuple[str, ...], *, limit: int, offset: int) -> list[SearchHit]:
        key = _name_key(terms)
        return _hits(
            _rows(
                "SELECT p.name, p.normalized_name, s.summary FROM projects_search s "
                "JOIN projects_project p ON p.id = s.rowid "
                "WHERE projects_search MATCH %s AND p.status <> %s "
                f"ORDER BY {_TIER}, bm25(projects_search, 10.0, 1.0), p.normalized_name "
                "LIMIT %s OFFSET %s",
                [
                    cls.match(terms),
                    ProjectStatus.QUARANTINED.value,
                    key,
                    key + "%",
                    key + "%",
                    limit,
                    offset,
                ],
            )
        )


class _PostgreSQL:
    @staticmethod
    def tsquery(terms: tuple[str, ...]) -> str:
        # tsquery lexemes in quotes; words hold no quote or backslash, the last is a prefix.
        quoted = [f"'{term}'" for term in terms]
        quoted[-1] += ":*"
        return " & ".join(quoted)

    @classmethod
    def count(cls, terms: tuple[str, ...], *, limit: int) -> int:
        rows = _rows(
            "SELECT count(*) FROM (SELECT 1 FROM projects_search s "
            "JOIN projects_project p ON p.id = s.project_id "
            "WHERE s.document @@ to_tsquery('simple', %s) AND p.status <> %s LIMIT %s) AS m",
            [cls.tsquery(terms), ProjectStatus.QUARANTINED.value, limit],
        )
        return _int(rows[0][0])

    @classmethod
    def hits(cls, terms: tuple[str, ...], *, limit: int, offset: int) -> list[SearchHit]:
        key = _name_key(terms)
        return _hits(
            _rows(
                "SELECT p.name, p.normalized_name, s.summary FROM projects_search s "
                "JOIN projects_project p ON p.id = s.project_id "
                "CROSS JOIN to_tsquery('simple', %s) AS q(query) "
                "WHERE s.document @@ q.query AND p.status <> %s "
                f"ORDER BY {_TIER}, ts_rank(s.document, q.query) DESC, p.normalized_name "
                "LIMIT %s OFFSET %s",
                [
                    cls.tsquery(terms),
                    ProjectStatus.QUARANTINED.value,
                    key,
                    key + "%",
                    key + "%",
                    limit,
                    offset,
                ],
            )
        )


class _Fallback:
    """Databases without an index: the name contains the query (no summary, no ranking)."""

    @staticmethod
    def _projects(terms: tuple[str, ...]):  # type: ignore[no-untyped-def]
        from bastion.projects.queries import visible_projects

        return visible_projects().filter(normalized_name__contains=_name_key(terms))

    @classmethod
    def count(cls, terms: tuple[str, ...], *, limit: int) -> int:
        return len(cls._projects(terms).values_list("pk", flat=True)[:limit])

    @classmethod
    def hits(cls, terms: tuple[str, ...], *, limit: int, offset: int) -> list[SearchHit]:
        rows = cls._projects(terms).order_by("normalized_name")[offset : offset + limit]
        return [SearchHit(p.name, p.normalized_name, "") for p in rows]


_BACKENDS: Final[dict[str, type[_SQLite] | type[_PostgreSQL] | type[_Fallback]]] = {
    "sqlite": _SQLite,
    "postgresql": _PostgreSQL,
}
