"""Reading and inserting model rows on the upload path in SQL.

Building the ORM's query cost more than the database spent answering it (~0.25 ms per read or
insert, and an upload makes about ten). Here each statement is built once per model, values
are prepared by their model fields the way ``Model.save()`` would (defaults, datetimes, JSON;
on SQLite, text, integers and booleans that already have their field's type are stored as they
are, which is what that preparation returns for them), and a row read back goes through the
same converters as a queryset's. For models without ``save()`` logic or signal receivers only:
neither runs here. The thread's connection is looked up once per call: each attribute read
through ``django.db.connection`` is a thread-local look-up, and preparing a row's values reads
it a few times per field.

``fetch_one``, ``fetch_all`` and ``execute`` run a statement of the upload path (and the reads
and inserts here do) on the embedded SQLite database's own connection, without Django's cursor
wrapper: about half of a short statement's ~12 us in process, and an upload runs some twenty.
Database errors are still Django's (``wrap_database_errors``), and whenever something observes
the queries (a debug cursor, a test's query capture, an execute wrapper) or the database is
another, Django's cursor runs the statement as before.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (
    AutoField,
    BigAutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    Field,
    ForeignKey,
    IntegerField,
    Model,
    OneToOneField,
    PositiveBigIntegerField,
    PositiveIntegerField,
    PositiveSmallIntegerField,
    SmallIntegerField,
    TextField,
)

from bastion.sqlite.base import qmark

M = TypeVar("M", bound=Model)
N = TypeVar("N", bound=Model)


@cache
def _columns(model: type[Model]) -> tuple[tuple[Field[object, object], ...], Field[object, object]]:
    meta = model._meta
    pk = meta.pk
    assert pk is not None
    auto = getattr(pk, "db_returning", False)
    fields = tuple(f for f in meta.local_concrete_fields if not (auto and f is pk))
    return fields, pk  # type: ignore[return-value]


# Field classes whose value is stored as it is when it already has the field's Python type
# (or is None): their preparation (``get_prep_value``, ``to_python``) returns such a value
# unchanged. Exact classes only: a subclass may prepare its values otherwise.
_STORED_AS_IS: dict[type[Field[Any, Any]], type] = {
    CharField: str,
    TextField: str,
    IntegerField: int,
    BigIntegerField: int,
    SmallIntegerField: int,
    PositiveIntegerField: int,
    PositiveBigIntegerField: int,
    PositiveSmallIntegerField: int,
    AutoField: int,
    BigAutoField: int,
    BooleanField: bool,
}


@cache
def _preparers(
    model: type[Model], vendor: str
) -> tuple[tuple[Field[Any, Any], str, type | None], ...]:
    """Each inserted column's field, attribute and the Python type its value is stored as it
    is when it has it (None: always prepared by the field, as ``Model.save()`` prepares it:
    datetimes, JSON, keys to anything but an integer, fields with ``pre_save`` logic; and every
    value on databases other than SQLite, where Django wraps integers for the driver)."""
    fields, _pk = _columns(model)
    found = []
    for field in fields:
        kind = None
        # (auto_now fields set their value in pre_save)
        if vendor == "sqlite" and type(field).pre_save is Field.pre_save:
            target: Field[Any, Any] = field
            if isinstance(field, ForeignKey) and type(field) in (ForeignKey, OneToOneField):
                target = field.target_field  # (what ForeignKey.get_db_prep_save defers to)
            kind = _STORED_AS_IS.get(type(target))
            if target is not field and kind is not int:
                kind = None  # ("" to a text key is stored as NULL on some databases)
        found.append((field, field.attname, kind))
    return tuple(found)


def _prepared(obj: Model, conn: BaseDatabaseWrapper) -> Iterator[object]:
    for field, attname, kind in _preparers(type(obj), conn.vendor):
        value = getattr(obj, attname)
        if value is None or type(value) is kind:
            yield value
        else:
            yield field.get_db_prep_save(field.pre_save(obj, True), conn)


@cache
def _statement(model: type[Model], rows: int, returning: bool, vendor: str) -> str:
    fields, pk = _columns(model)
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    names = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    sql = f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({names}) VALUES "
    sql += ", ".join([one] * rows)
    if returning:
        sql += f" RETURNING {connection.ops.quote_name(pk.column)}"
    return sql


@cache
def _select(model: type[Model], vendor: str) -> tuple[str, tuple[str, ...]]:
    """Every column of ``model``'s table, named with the table (so that a join can add
    another's), and the attribute names in that order."""
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    fields = model._meta.concrete_fields
    columns = ", ".join(f"{table}.{quote(f.column)}" for f in fields)
    return columns, tuple(f.attname for f in fields)


@cache
def _from(model: type[Model], vendor: str) -> str:
    return f" FROM {connection.ops.quote_name(model._meta.db_table)} "


def _direct(conn: BaseDatabaseWrapper) -> Any:
    """The SQLite driver's connection to run a statement on directly, or None where Django's
    cursor must: another database, or queries being observed (see the module's docstring)."""
    if conn.vendor != "sqlite" or conn.execute_wrappers or conn.queries_logged:
        return None
    conn.validate_no_broken_transaction()  # as Django's cursor does before each statement
    if conn.connection is None:
        conn.ensure_connection()
    return conn.connection


@contextmanager
def _run(conn: BaseDatabaseWrapper, sql: str, params: Sequence[object]) -> Iterator[Any]:
    """A cursor that ran ``sql`` (``%s`` placeholders): the driver's (``_direct``) or Django's."""
    direct = _direct(conn)
    if direct is None:
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            yield cursor
        return
    with conn.wrap_database_errors:
        yield direct.execute(qmark(sql), params)


def fetch_one(sql: str, params: Sequence[object] = ()) -> tuple[Any, ...] | None:
    """The first row ``sql`` (``%s`` placeholders) returns, or None."""
    return _fetch_one(connections[DEFAULT_DB_ALIAS], sql, params)


def _fetch_one(
    conn: BaseDatabaseWrapper, sql: str, params: Sequence[object]
) -> tuple[Any, ...] | None:
    with _run(conn, sql, params) as cursor:
        row: tuple[Any, ...] | None = cursor.fetchone()
        return row


def fetch_all(sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    with _run(connections[DEFAULT_DB_ALIAS], sql, params) as cursor:
        return list(cursor.fetchall())


def execute(sql: str, params: Sequence[object] = ()) -> int:
    """Run ``sql`` (an UPDATE or DELETE); the number of rows it changed."""
    with _run(connections[DEFAULT_DB_ALIAS], sql, params) as cursor:
        return int(cursor.rowcount)


def _load(conn: BaseDatabaseWrapper, model: type[M], values: Sequence[object]) -> M:
    """An instance of ``model`` from its columns' values, converted as a queryset would."""
    _columns, names = _select(model, conn.vendor)
    loaded = list(values)
    for i, column, converters in _converters(conn, model):
        for convert in converters:
            loaded[i] = convert(loaded[i], column, conn)
    return model.from_db(conn.alias, names, loaded)


def _converters(conn: BaseDatabaseWrapper, model: type[Model]) -> list[tuple[int, Any, list[Any]]]:
    """The converters of ``model``'s columns that have some, on this connection (asked once per
    connection and model: the backend builds the list anew on each call)."""
    kept: dict[type[Model], list[tuple[int, Any, list[Any]]]] = conn.__dict__.setdefault(
        "_bastion_row_converters", {}
    )
    found = kept.get(model)
    if found is None:
        found = []
        for i, field in enumerate(model._meta.concrete_fields):
            column = field.get_col(model._meta.db_table)
            converters = [*conn.ops.get_db_converters(column), *field.get_db_converters(conn)]
            if converters:
                found.append((i, column, converters))
        kept[model] = found
    return found


def get(model: type[M], where: str, params: Sequence[object]) -> M | None:
    """The first row of ``model`` matching ``where`` (SQL after ``FROM table``: a WHERE
    clause, maybe a lock), as an instance loaded like the ORM loads it; None if none matches."""
    conn = connections[DEFAULT_DB_ALIAS]
    columns, _names = _select(model, conn.vendor)
    row = _fetch_one(conn, f"SELECT {columns}{_from(model, conn.vendor)}{where}", params)
    return None if row is None else _load(conn, model, row)


def get_with(
    model: type[M], extra: str, where: str, params: Sequence[object]
) -> tuple[M, tuple[object, ...]] | None:
    """``get``, and from the same row the values of ``extra``: SQL expressions after the
    model's columns (a subquery, say; its parameters come first in ``params``)."""
    conn = connections[DEFAULT_DB_ALIAS]
    columns, names = _select(model, conn.vendor)
    row = _fetch_one(conn, f"SELECT {columns}, {extra}{_from(model, conn.vendor)}{where}", params)
    if row is None:
        return None
    return _load(conn, model, row[: len(names)]), tuple(row[len(names) :])


def get_joined(
    first: type[M], second: type[N], joins: str, params: Sequence[object]
) -> tuple[M, N] | None:
    """A row of ``first`` joined to one of ``second`` (``joins``: SQL after ``FROM <first's
    table>``, the join and a WHERE clause), both loaded as ``get`` loads them; None if none."""
    conn = connections[DEFAULT_DB_ALIAS]
    first_columns, first_names = _select(first, conn.vendor)
    second_columns, _names = _select(second, conn.vendor)
    sql = f"SELECT {first_columns}, {second_columns}{_from(first, conn.vendor)}{joins}"
    row = _fetch_one(conn, sql, params)
    if row is None:
        return None
    split = len(first_names)
    return _load(conn, first, row[:split]), _load(conn, second, row[split:])


def insert(*objs: Model) -> None:
    """INSERT ``objs`` (instances of one model, not saved yet) in one statement; each gets
    its primary key, as after ``save()``."""
    model = type(objs[0])
    assert all(type(obj) is model for obj in objs)
    conn = connections[DEFAULT_DB_ALIAS]
    _fields, pk = _columns(model)
    auto = getattr(pk, "db_returning", False)
    returning = auto and conn.features.can_return_rows_from_bulk_insert
    if auto and not returning and len(objs) > 1:  # SQLite before 3.35: one key per statement
        for obj in objs:
            insert(obj)
        return
    values = [value for obj in objs for value in _prepared(obj, conn)]
    with _run(conn, _statement(model, len(objs), returning, conn.vendor), values) as cursor:
        if returning:
            for obj, (key,) in zip(objs, cursor.fetchall(), strict=True):
                obj.pk = key
        elif auto:  # (SQLite's: the cursor's lastrowid, on either cursor)
            objs[0].pk = conn.ops.last_insert_id(cursor, model._meta.db_table, pk.column)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = conn.alias
