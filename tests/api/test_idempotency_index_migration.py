"""The migration that indexes kept idempotency answers by time (api 0003) builds the index
CONCURRENTLY on PostgreSQL, so writes go on meanwhile. Such a build waits for every
transaction already writing the table, and one that fails leaves an index marked invalid
behind it, which PostgreSQL keeps but never uses: the build must neither give up at the
lock timeout nor take that leftover for the index."""

from __future__ import annotations

import importlib
import threading
import time
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection

from tests.conftest import another_connection

migration = importlib.import_module("api.migrations.0003_idempotency_created_at_index")
INDEX = "idempotency_created_at"

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


def test_the_build_waits_for_a_write_in_progress_past_the_lock_timeout(
    without_the_index, short_lock_timeout
):
    """A write to the table still open when the deploy runs (an API call, a prune) held the
    build past the connections' lock timeout: it failed the deploy and left an invalid index."""
    with another_connection() as other:
        # What a transaction that has written a row holds until it ends.
        other.execute("LOCK TABLE apikeys_idempotencyrecord IN ROW EXCLUSIVE MODE")
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
    """A build that failed (cancelled, its deploy killed) leaves an invalid index of the
    name: IF NOT EXISTS took it for the index, the migration was recorded as done, and the
    prune went back to reading the whole table every day."""
    build()
    with connection.cursor() as cursor:  # what a failed CONCURRENTLY build leaves
        cursor.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", [INDEX]
        )
    assert index_state() is False
    build()
    assert index_state() is True
