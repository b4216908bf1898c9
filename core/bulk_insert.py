"""Inserting a batch of rows that may already be there, as cheaply as the database allows.

The write-behind sinks (usage rows, executions) insert a few hundred to a few thousand
rows at a time, and must skip the ones a retried batch wrote before (insert_new), or add
to the counts of the roll-up rows that are there (upsert). Django's
bulk_create() builds and quotes one statement per batch on the client, which costs more
CPU than PostgreSQL spends inserting the rows. On PostgreSQL this sends one prepared
statement whose parameters are one array per column:

    INSERT INTO t (a, b) SELECT * FROM unnest($1::bigint[], $2::text[])
    ON CONFLICT (…) DO NOTHING RETURNING …

so the statement is the same whatever the number of rows (parsed and planned once per
connection) and the values travel as arrays, not as SQL text. Elsewhere (SQLite) it is a
multi-row VALUES list.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connection
from django.db.models import (
    BooleanField,
    CharField,
    DateTimeField,
    Field,
    ForeignKey,
    IntegerField,
    Model,
)

from core.prepared import fetch_all

ROWS_PER_STATEMENT = 500  # SQLite allows 32,766 parameters: 65 columns at this size


def insert_new(
    model: type[Model],
    fields: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    conflict: Sequence[str],
    returning: str,
) -> list[Any]:
    """Insert `rows` (Python values, in the order of `fields`) into `model`'s table,
    skipping any that conflict on the columns `conflict`. Returns `returning` of the rows
    actually inserted."""
    q = connection.ops.quote_name
    keys = ", ".join(q(name) for name in conflict)
    tail = f" ON CONFLICT ({keys}) DO NOTHING RETURNING {q(returning)}"
    return [row[0] for row in _insert(model, fields, rows, tail)]


def upsert(
    model: type[Model],
    fields: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    conflict: str,
    updates: str,
) -> None:
    """Insert `rows` (Python values, in the order of `fields`) into `model`'s table; a row
    that conflicts with one there on `conflict` (the unique constraint's columns or
    expressions, as SQL) updates it as `updates` says instead (SQL after DO UPDATE SET,
    where `excluded.` names the new row's values). One statement for the batch, as
    insert_new: a roll-up's rows one statement each took about 0.15 ms apiece on
    PostgreSQL, pipelined, and a batch spanning days holds a row for each hour of each key.

    No two of `rows` may conflict with each other: PostgreSQL refuses to update one row
    twice in a statement ("ON CONFLICT DO UPDATE command cannot affect row a second
    time"). The caller sums such rows into one first."""
    _insert(model, fields, rows, f" ON CONFLICT ({conflict}) DO UPDATE SET {updates}")


def _insert(
    model: type[Model], fields: Sequence[str], rows: Sequence[Sequence[Any]], tail: str
) -> list[tuple[Any, ...]]:
    """INSERT `rows` into `model`'s table, followed by `tail`; the rows it returns."""
    if not rows:
        return []
    columns = [_field(model, name) for name in fields]
    q = connection.ops.quote_name
    names = ", ".join(q(_column(f)) for f in columns)
    table = q(model._meta.db_table)
    if connection.vendor == "postgresql":
        # %b: each array travels in binary, which psycopg packs without scanning every
        # string for characters to quote (a third of the ingest's own CPU in text).
        arrays = ", ".join(f"%b::{_array_type(f)}[]" for f in columns)
        sql = f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}){tail}"  # noqa: S608
        params = [
            [json.dumps(value) for value in values] if _is_json(f) else list(values)
            for f, values in zip(columns, zip(*rows, strict=True), strict=True)
        ]
        return fetch_all(sql, params)
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    prepared = [_for_sqlite(f) for f in columns]
    returned: list[tuple[Any, ...]] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start : start + ROWS_PER_STATEMENT]
            values = ", ".join([one] * len(chunk))
            cursor.execute(
                f"INSERT INTO {table} ({names}) VALUES {values}{tail}",  # noqa: S608
                [
                    value if prepare is None else prepare(value)
                    for row in chunk
                    for prepare, value in zip(prepared, row, strict=True)
                ],
            )
            if cursor.description:
                returned.extend(cursor.fetchall())
    return returned


def _for_sqlite(field: Field[Any, Any]) -> Callable[[Any], Any] | None:
    """How a value of `field` is sent to SQLite: a time as the text the ORM stores, JSON
    and addresses as the field prepares them, and numbers, text and flags as they are
    (None). get_db_prep_value() for every value was most of a roll-up's write there."""
    if isinstance(field, DateTimeField):
        return connection.ops.adapt_datetimefield_value
    if isinstance(field, IntegerField | CharField | BooleanField | ForeignKey):
        return None
    return lambda value: field.get_db_prep_value(value, connection)


def _field(model: type[Model], name: str) -> Field[Any, Any]:
    field = model._meta.get_field(name)
    assert isinstance(field, Field)
    return field


def _column(field: Field[Any, Any]) -> str:
    return field.column or field.attname


@functools.cache
def _array_type(field: Field[Any, Any]) -> str:
    """The element type of the column's array: its type without a length (a text value too
    long for a varchar(n) is then an error on insert, not cut short by the cast). Worked
    out once a field: db_type() cost 23-45 µs, for each column of every statement."""
    db_type = field.rel_db_type(connection) if field.remote_field else field.db_type(connection)
    assert db_type is not None
    db_type = re.sub(r"\(.*\)", "", db_type).strip()
    return "text" if db_type in ("varchar", "character varying") else db_type


def _is_json(field: Field[Any, Any]) -> bool:
    """A JSON column's values travel as text, cast to jsonb by the statement."""
    return field.get_internal_type() == "JSONField"
