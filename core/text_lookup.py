"""`user_agent__contains_any_case="python-requests"` and `path__starts_any_case="/v1/"`:
Django's icontains and istartswith (%, _ and \\ escaped, so they match themselves), said
on PostgreSQL as `column ILIKE pattern` instead of Django's `UPPER(column) LIKE UPPER(…)`.

The answer is the same; the planner's estimate is not. For an expression such as
UPPER(column) PostgreSQL has no statistics and guesses that a few rows match, so a page
of a common user agent (a third of a million calls) was read by scanning and sorting
every call of the range, 105 ms for a day of 33,000 calls; on the bare column it reads
the column's most common values, expects many matches and walks the time index until
the page is full, 0.4 ms. A rare value is still expected to be rare.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import CharField
from django.db.models.lookups import IContains, IStartsWith
from django.db.models.sql.compiler import SQLCompiler

type Sql = tuple[str, Any]


def _ilike(
    lookup: IContains | IStartsWith, compiler: SQLCompiler, connection: BaseDatabaseWrapper
) -> Sql:
    lhs, lhs_params = compiler.compile(lookup.lhs)
    rhs, rhs_params = lookup.process_rhs(compiler, connection)
    return f"{lhs}::text ILIKE {rhs}", (*lhs_params, *rhs_params)


class ContainsAnyCase(IContains):
    """The text holds the value, in any case (Django's icontains)."""

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Sql:
        return _ilike(self, compiler, connection)


class StartsAnyCase(IStartsWith):
    """The text starts with the value, in any case (Django's istartswith)."""

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Sql:
        return _ilike(self, compiler, connection)


def register() -> None:
    # Under names of their own: the classes keep Django's lookup_name, which picks the
    # operators and the escaping on every other database.
    CharField.register_lookup(ContainsAnyCase, lookup_name="contains_any_case")
    CharField.register_lookup(StartsAnyCase, lookup_name="starts_any_case")
