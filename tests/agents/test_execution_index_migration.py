"""agents 0005 builds the index on one agent's executions CONCURRENTLY on PostgreSQL, as
api 0003 builds its own (tests/api/test_idempotency_index_migration.py): calls are logged
meanwhile, so the build waits for a write in progress rather than failing at the lock
timeout, and takes no invalid index left by a failed build for the index."""

from __future__ import annotations

import importlib
import threading
import time
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection

from tests.conftest import another_connection

migration = importlib.import_module("agents.migrations.0005_execution_agent_index")
INDEX = "exec_project_agent_newest"

pytestmark = pytest.mark.django_db(transaction=True)  # CONCURRENTLY: never in a transaction


def build() -> None:
    migration.create_index(apps, SimpleNamespace(connection=connection))


def index_state() -> bool | None:
    """Whether the index is valid (None: there is none)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s",
            [INDEX],
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


@pytest.fixture
def without_the_index():
    if connection.vendor != "postgresql":
        pytest.skip("CONCURRENTLY is PostgreSQL's: SQLite builds an ordinary index")
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {INDEX}")
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {INDEX}")
    build()  # as the migrations left it, for the tests after this one


def test_the_build_waits_for_an_execution_being_written_past_the_lock_timeout(
    without_the_index, short_lock_timeout
):
    with another_connection() as other:
        # What the write-behind's open insert of a batch of executions holds.
        other.execute("LOCK TABLE agents_execution IN ROW EXCLUSIVE MODE")
        finished = threading.Timer(1.0, other.rollback)
        finished.start()
        started = time.monotonic()
        try:
            build()
        finally:
            finished.join()
    assert time.monotonic() - started >= 0.5  # it waited for the write, then built
    assert index_state() is True


def test_an_invalid_index_left_by_a_failed_build_is_built_again(without_the_index):
    build()
    with connection.cursor() as cursor:  # what a failed CONCURRENTLY build leaves
        cursor.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", [INDEX]
        )
    assert index_state() is False
    build()
    assert index_state() is True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_indexdef(%s::regclass)", [INDEX])
        (definition,) = cursor.fetchone()
    assert "(project_id, agent_name, id DESC)" in definition
