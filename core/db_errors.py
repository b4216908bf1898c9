"""Telling one unit of work that ran out of time from a database that is gone.

Django raises an OperationalError for a lost connection and, on PostgreSQL, just the same
for a statement cancelled at statement_timeout (SQLSTATE 57014, psycopg's QueryCanceled)
and for one that gave up waiting for a row or table lock at lock_timeout (55P03,
LockNotAvailable); the settings put both timeouts on every connection. A lost connection
means nothing more can be done now: a job stops, and its next run retries. A timeout is
one unit's own (its query is too slow for the timeout, or another transaction holds its
row) while the database goes on answering everyone else: a job that works per tenant logs
that unit, counts it, leaves it for the next run and goes on with the others.
"""

from __future__ import annotations

from django.db import InterfaceError, OperationalError

QUERY_CANCELED = "57014"
LOCK_NOT_AVAILABLE = "55P03"


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of the driver's error behind a Django database error (None: no code)."""
    return getattr(error.__cause__, "sqlstate", None)


def timed_out(error: BaseException) -> bool:
    """A statement PostgreSQL cancelled at its statement timeout (or on request)."""
    return sqlstate(error) == QUERY_CANCELED


def lock_timed_out(error: BaseException) -> bool:
    """A statement that gave up waiting for a lock another transaction held."""
    return sqlstate(error) == LOCK_NOT_AVAILABLE


def database_unavailable(error: BaseException) -> bool:
    """The database itself failed (a lost connection, a server going away): stop, and let
    the next run retry. Not a statement or lock timeout, which is one unit's own."""
    return isinstance(error, OperationalError | InterfaceError) and not (
        timed_out(error) or lock_timed_out(error)
    )
