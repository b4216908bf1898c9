"""Telling a unit of work that ran out of time from a database that is gone (core/db_errors):
Django raises all three as an OperationalError; only the SQLSTATE behind it tells them apart."""

from __future__ import annotations

import pytest
from django.db import InterfaceError, OperationalError, connection, transaction

from core.db_errors import database_unavailable, lock_timed_out, timed_out
from tests.conftest import another_connection

LOCK = 7_201_511_099  # an advisory lock of this test's own


def test_a_real_statement_timeout_is_told_apart_from_a_lost_connection(db):
    if connection.vendor != "postgresql":
        pytest.skip("statement_timeout is PostgreSQL's")
    with pytest.raises(OperationalError) as raised, transaction.atomic(), connection.cursor() as c:
        c.execute("SET LOCAL statement_timeout = '20ms'")
        c.execute("SELECT pg_sleep(1)")
    assert timed_out(raised.value) and not lock_timed_out(raised.value)
    assert not database_unavailable(raised.value)


def test_a_real_sqlite_interrupt_is_a_timeout_not_a_lost_database(db):
    """What core.csv_stream's progress handler raises when an export's time is up."""
    if connection.vendor != "sqlite":
        pytest.skip("the progress handler is SQLite's")
    connection.ensure_connection()
    raw = connection.connection
    raw.set_progress_handler(lambda: 1, 1)
    try:
        with pytest.raises(OperationalError) as raised, connection.cursor() as c:
            c.execute("SELECT 1")
    finally:
        raw.set_progress_handler(None, 1)
    assert timed_out(raised.value) and not lock_timed_out(raised.value)
    assert not database_unavailable(raised.value)


def test_a_real_lock_timeout_is_told_apart_from_a_lost_connection(db):
    if connection.vendor != "postgresql":
        pytest.skip("lock_timeout is PostgreSQL's")
    with another_connection() as other:
        other.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK])
        with (
            pytest.raises(OperationalError) as raised,
            transaction.atomic(),
            connection.cursor() as c,
        ):
            c.execute("SET LOCAL lock_timeout = '20ms'")
            c.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK])
    assert lock_timed_out(raised.value) and not timed_out(raised.value)
    assert not database_unavailable(raised.value)


@pytest.mark.parametrize(
    "error",
    [OperationalError("the database is down"), InterfaceError("connection already closed")],
    ids=["lost connection", "closed connection"],
)
def test_a_lost_connection_is_the_database_being_unavailable(error):
    assert database_unavailable(error)
    assert not timed_out(error) and not lock_timed_out(error)


def test_an_error_of_a_units_own_data_is_not_the_database_being_unavailable():
    assert not database_unavailable(ValueError("a row no check expected"))
