"""`user_agent__contains_any_case="python-requests"` and `path__starts_any_case="/v1/"`:
Django's icontains and istartswith (%, _ and \\ escaped, so they match themselves), said
on PostgreSQL as `column ILIKE pattern` instead of Django's `UPPER(column) LIKE UPPER(…)`.

The answer is the same; the planner's estimate is not. For an expression such as
UPPER(column) PostgreSQL has no statistics and guesses that a few rows match, so a page
of a common user agent (a third of a million calls) was read by scanning and sorting
every call of the range, 105 ms for a day of 33,000 calls; on the bare column it reads
the column's most common values, expects many matches and walks the time index until
the page is full, 0.4 ms. A rare value is still expected to be rare.

On SQLite, whose LIKE folds the case of ASCII letters alone (so "CAFÉ" did not find
"Café" there, where PostgreSQL's ILIKE did), both sides go through a function registered
on each of its connections that lowers one letter at a time, as ILIKE does: É finds é,
İ finds i, and ß is no more "ss" than on PostgreSQL.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.db.models import CharField
from django.db.models.lookups import IContains, IStartsWith
from django.db.models.sql.compiler import SQLCompiler

type Sql = tuple[str, Any]

SQLITE_FUNCTION = "reminix_lower_each"


@lru_cache(maxsize=4096)
def _lower_one(letter: str) -> str:
    # One letter for one, as PostgreSQL's lower() under ILIKE: Python's own lower() makes
    # İ two (i and a dot above) and a final Σ ς, by context.
    return letter.lower()[:1] or letter


def lower_each(text: str | None) -> str | None:
    """`text` with each letter lowered on its own (None stays None, as NULL does)."""
    return None if text is None else "".join(map(_lower_one, text))


def _ilike(
    lookup: IContains | IStartsWith, compiler: SQLCompiler, connection: BaseDatabaseWrapper
) -> Sql:
    lhs, lhs_params = compiler.compile(lookup.lhs)
    rhs, rhs_params = lookup.process_rhs(compiler, connection)
    return f"{lhs}::text ILIKE {rhs}", (*lhs_params, *rhs_params)


def _like_lowered(
    lookup: IContains | IStartsWith, compiler: SQLCompiler, connection: BaseDatabaseWrapper
) -> Sql:
    lhs, lhs_params = compiler.compile(lookup.lhs)
    rhs, rhs_params = lookup.process_rhs(compiler, connection)
    # Django's own escape character for these lookups on SQLite; lowering leaves it, %
    # and _ as they are.
    sql = f"{SQLITE_FUNCTION}({lhs}) LIKE {SQLITE_FUNCTION}({rhs}) ESCAPE '\\'"
    return sql, (*lhs_params, *rhs_params)


class ContainsAnyCase(IContains):
    """The text holds the value, in any case (Django's icontains)."""

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Sql:
        return _ilike(self, compiler, connection)

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Sql:
        return _like_lowered(self, compiler, connection)


class StartsAnyCase(IStartsWith):
    """The text starts with the value, in any case (Django's istartswith)."""

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Sql:
        return _ilike(self, compiler, connection)

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Sql:
        return _like_lowered(self, compiler, connection)


def register() -> None:
    # Under names of their own: the classes keep Django's lookup_name, which picks the
    # operators and the escaping on every other database.
    CharField.register_lookup(ContainsAnyCase, lookup_name="contains_any_case")
    CharField.register_lookup(StartsAnyCase, lookup_name="starts_any_case")
    connection_created.connect(_on_sqlite, dispatch_uid="core.text_lookup")


def _on_sqlite(sender: object, connection: BaseDatabaseWrapper, **kwargs: object) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_function(SQLITE_FUNCTION, 1, lower_each, deterministic=True)
