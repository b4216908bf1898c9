"""A JSON column's top-level type, checked by the database: a column our services only ever
write as an object (or a list) refuses any other JSON, so a row edited by hand or restored
from elsewhere is refused where it is written, not guessed at by every page that reads it.

`JsonType(column)` is the type of the column's value: PostgreSQL's `jsonb_typeof()`,
SQLite's `json_type()`. The two spell scalars differently ("number" and "integer"), but
"object" and "array" alike, and those are the only types a constraint here names.
`json_type_check()` is such a constraint for a model's `Meta.constraints`.

A migration that adds one repairs the rows already of another type first
(`json_type_repair`, one UPDATE per column), then adds it with `AddJsonTypeCheck`:
on PostgreSQL `ADD CONSTRAINT … NOT VALID` (an ACCESS EXCLUSIVE lock for a moment, no scan)
and `VALIDATE CONSTRAINT` (a scan that lets reads and writes go on), so that in a
migration with `atomic = False` a big table (the audit trail, the execution log) is not
locked for the length of its scan; elsewhere (SQLite) an ordinary AddConstraint.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from django.db import NotSupportedError, connections, migrations, models, transaction
from django.db.models.lookups import Exact

type Container = Literal["object", "array"]


class JsonType(models.Func):
    """The type of a JSON column's top-level value, as text ("object", "array", …)."""

    arity = 1
    output_field = models.CharField()

    def as_sql(self, compiler: Any, connection: Any, *args: Any, **extra: Any) -> Any:
        raise NotSupportedError("JsonType is written for PostgreSQL and SQLite only.")

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return super().as_sql(compiler, connection, function="JSONB_TYPEOF", **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return super().as_sql(compiler, connection, function="JSON_TYPE", **extra)


class JsonWrapped(models.Func):
    """{key: the column's value}: what a repair keeps a value of the wrong type in, so that
    nothing is lost (the column's JSON stays JSON, not a string of it)."""

    arity = 1
    output_field = models.JSONField()

    def __init__(self, key: str, expression: Any) -> None:
        self.key = key
        super().__init__(expression)

    def as_sql(self, compiler: Any, connection: Any, *args: Any, **extra: Any) -> Any:
        raise NotSupportedError("JsonWrapped is written for PostgreSQL and SQLite only.")

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        inner, params = compiler.compile(self.source_expressions[0])
        return f"JSONB_BUILD_OBJECT(%s::text, {inner})", (self.key, *params)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # JSON() so that SQLite takes the column's text as JSON, not as a string.
        inner, params = compiler.compile(self.source_expressions[0])
        return f"JSON_OBJECT(%s, JSON({inner}))", (self.key, *params)


def json_type_check(*, field: str, json_type: Container, name: str) -> models.CheckConstraint:
    """The constraint that `field` holds a JSON `json_type` (NULL passes: nullability is
    the column's own)."""
    return models.CheckConstraint(
        condition=Exact(JsonType(models.F(field)), json_type),
        name=name,
        violation_error_message=f"{field} must be a JSON {json_type}.",
    )


def json_type_repair(
    model: type[models.Model], field: str, json_type: Container, to: Any, *, using: str
) -> int:
    """Set `field` to `to` (a value, or an expression such as JsonWrapped) in every row of
    `model` where it is JSON of another type than `json_type`; how many. One UPDATE,
    which reads the whole table: with no statement timeout."""
    wrong = (
        model._default_manager.using(using)
        .alias(json_type_now=JsonType(models.F(field)))
        .exclude(json_type_now=json_type)
    )
    value = to if hasattr(to, "resolve_expression") else models.Value(to, models.JSONField())
    with _without_statement_timeout(using):
        return wrong.update(**{field: value})


def report(label: str, counts: dict[str, int]) -> None:
    """One line per column a repair changed rows of (none when none did), on migrate's
    output."""
    for column, count in counts.items():
        if count:
            print(f"  {label}.{column}: {count} row(s) of another JSON type repaired")


class AddJsonTypeCheck(migrations.AddConstraint):
    """AddConstraint of a json_type_check, added as the module says: on PostgreSQL NOT
    VALID, then validated with no statement timeout; elsewhere as AddConstraint does (SQLite
    makes the table anew, all or nothing even in a migration with `atomic = False`).
    Going back, dropped."""

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        connection = schema_editor.connection
        if connection.vendor != "postgresql":
            with transaction.atomic(using=connection.alias):
                super().database_forwards(app_label, schema_editor, from_state, to_state)
            return
        model = to_state.apps.get_model(app_label, self.model_name)
        table = schema_editor.quote_name(model._meta.db_table)
        name = schema_editor.quote_name(self.constraint.name)
        check = self.constraint.constraint_sql(model, schema_editor)
        in_transaction = connection.in_atomic_block
        with connection.cursor() as cursor:
            if in_transaction:
                # A repair earlier in the same transaction left foreign key checks
                # deferred to its end; PostgreSQL alters no table with checks pending.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            # A run stopped after adding it, before it was valid, is run again whole.
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")
            cursor.execute(f"ALTER TABLE {table} ADD {check} NOT VALID")
            if in_transaction:
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        with _without_statement_timeout(connection.alias), connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")


@contextmanager
def _without_statement_timeout(using: str) -> Iterator[None]:
    """On PostgreSQL, no statement timeout inside (a scan of a big table outlasts the
    connections' `DB_STATEMENT_TIMEOUT`); the session's own again after. A transaction that
    failed inside is rolled back, its SET with it."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 0")
    try:
        yield
    except BaseException:
        if not connection.in_atomic_block:
            with connection.cursor() as cursor:
                cursor.execute("RESET statement_timeout")
        raise
    with connection.cursor() as cursor:
        cursor.execute("RESET statement_timeout")
