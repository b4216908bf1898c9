"""What a database error is about: one unit of work that ran out of time, or a database
that is gone (jobs tell them apart); which constraint an IntegrityError broke (services
turn the one they expect into their own error and let every other through as the bug it
is).

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

from django.db import (
    IntegrityError,
    InterfaceError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
)

QUERY_CANCELED = "57014"
LOCK_NOT_AVAILABLE = "55P03"
# The statement itself refused, whatever its values: a table or column the code names is
# not there (code ahead of its migration), or the role may not use it.
SCHEMA_REFUSALS = {"42P01", "42703", "42501"}


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of the driver's error behind a Django database error (None: no code)."""
    return getattr(error.__cause__, "sqlstate", None)


def timed_out(error: BaseException) -> bool:
    """A statement PostgreSQL cancelled at its statement timeout (or on request), or one
    SQLite interrupted (a progress handler, core.csv_stream's, said its time was up)."""
    if getattr(error.__cause__, "sqlite_errorname", None) == "SQLITE_INTERRUPT":
        return True
    return sqlstate(error) == QUERY_CANCELED


def lock_timed_out(error: BaseException) -> bool:
    """A statement that gave up waiting for a lock another transaction held."""
    return sqlstate(error) == LOCK_NOT_AVAILABLE


def schema_refused(error: BaseException) -> bool:
    """PostgreSQL refused the SQL, not its values: a missing table or column, or no right
    to write it (SQLite calls the first two an OperationalError). Every statement of that
    kind fails alike until someone runs `migrate` or grants the right; no row is at fault.
    (Other ProgrammingErrors can come of values, e.g. a boolean sent for a number.)"""
    return isinstance(error, ProgrammingError) and sqlstate(error) in SCHEMA_REFUSALS


def database_unavailable(error: BaseException) -> bool:
    """The database itself failed (a lost connection, a server going away): stop, and let
    the next run retry. Not a statement or lock timeout, which is one unit's own."""
    return isinstance(error, OperationalError | InterfaceError) and not (
        timed_out(error) or lock_timed_out(error)
    )


def database_away_or_busy(error: BaseException) -> bool:
    """What the same statement may well get past a moment later: the database away
    (database_unavailable: a lost connection, a server shutting down or failing over) or
    busy (a statement or lock timeout; a serialization failure or a deadlock, which
    PostgreSQL's driver raises as OperationalErrors too; SQLite's "database is locked").
    Not a DataError, an IntegrityError or a ProgrammingError: the statement meets those
    again however long it waits."""
    return database_unavailable(error) or timed_out(error) or lock_timed_out(error)


def run_must_stop(error: BaseException) -> bool:
    """What no unit of a job can get past, so the job stops and its next run starts from
    where this one stopped (a cursor unmoved, a claim not made): the database gone, or
    SQL it cannot run (a ProgrammingError: code ahead of its migration, which SQLite
    reports as an OperationalError and PostgreSQL does not, or a plain bug). Every unit
    would fail alike; counted as each one's failure, a job that moves a cursor would move
    it past work it never did."""
    return database_unavailable(error) or isinstance(error, ProgrammingError | NotSupportedError)


def violates(error: IntegrityError, constraint: str) -> bool:
    """Whether `error` is a violation of the constraint (or unique index) named
    `constraint`. PostgreSQL names it in the error's diagnostics; SQLite names a unique
    index on expressions or with a condition in its message (a plain unique column it
    names by its columns instead, so this answers False for those)."""
    cause = error.__cause__
    diagnostics = getattr(cause, "diag", None)
    if diagnostics is not None:
        return bool(getattr(diagnostics, "constraint_name", None) == constraint)
    return str(cause or error) == f"UNIQUE constraint failed: index '{constraint}'"
