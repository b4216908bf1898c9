"""The migrations that index a table written while a deploy runs (api 0003: the kept
idempotency answers by time; agents 0005: one agent's executions; webhooks 0004: an
endpoint's deliveries; audit 0002 and 0003: a person's sign-ins, a project's events by
actor; alerts 0007: a key's open alerts; apikeys 0029: a project's client tokens) build
it CONCURRENTLY on PostgreSQL (core/concurrent_index.py), so writes go on meanwhile.
Such a build waits for every transaction already writing the table, and one that fails
leaves an index marked invalid, which PostgreSQL keeps but never uses: the build must
neither give up at the lock timeout nor take that leftover for the index."""

from __future__ import annotations

import importlib
import threading
import time
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection

from tests.conftest import another_connection

pytestmark = pytest.mark.django_db(transaction=True)  # CONCURRENTLY: never in a transaction

BUILDS = [
    pytest.param(
        ("api.migrations.0003_idempotency_created_at_index", "(created_at)"),
        id="idempotency-answers-by-time",
    ),
    pytest.param(
        ("agents.migrations.0005_execution_agent_index", "(project_id, agent_name, id DESC)"),
        id="one-agents-executions",
    ),
    pytest.param(
        (
            "webhooks.migrations.0005_delivery_log_newest_index",
            "(endpoint_id, created_at DESC, id DESC)",
        ),
        id="an-endpoints-deliveries",
    ),
    pytest.param(
        (
            "audit.migrations.0002_sign_ins_index",
            "(actor_id, created_at DESC) WHERE ((action)::text = 'user.signed_in'::text)",
        ),
        id="a-persons-sign-ins",
    ),
    pytest.param(
        (
            "audit.migrations.0003_filter_indexes",
            "(project_id, upper((actor_email)::text), created_at DESC, id DESC)",
        ),
        id="a-projects-events-by-actor",
    ),
    pytest.param(
        (
            "alerts.migrations.0007_flag_key_open_index",
            "(api_key_id) WHERE (acknowledged_at IS NULL)",
        ),
        id="a-keys-open-alerts",
    ),
    pytest.param(
        ("apikeys.migrations.0029_client_token_project_newest", "(project_id, id DESC)"),
        id="a-projects-client-tokens",
    ),
]


@pytest.fixture(params=BUILDS)
def migration(request):
    """The migration's build, with its index dropped first and built again after (as the
    migrations left it, for the tests after this one)."""
    if connection.vendor != "postgresql":
        pytest.skip("CONCURRENTLY is PostgreSQL's: SQLite builds an ordinary index")
    module, columns = request.param
    build = importlib.import_module(module).BUILD
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {build.index.name}")
    yield build, columns
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {build.index.name}")
    run(build)


def run(build) -> None:
    build.create(apps, SimpleNamespace(connection=connection))


def index_state(name: str) -> bool | None:
    """Whether the index is valid (None: there is none)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s",
            [name],
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


def test_the_build_waits_for_a_write_in_progress_past_the_lock_timeout(
    migration, short_lock_timeout
):
    """A write to the table still open when the deploy runs (an API call, a prune, the
    write-behind's batch) held the build past the connections' lock timeout: it failed the
    deploy and left an invalid index."""
    build, _ = migration
    with another_connection() as other:
        # What a transaction that has written a row holds until it ends.
        other.execute(f"LOCK TABLE {build.table} IN ROW EXCLUSIVE MODE")
        finished = threading.Timer(1.0, other.rollback)
        finished.start()
        started = time.monotonic()
        try:
            run(build)
        finally:
            finished.join()
    assert time.monotonic() - started >= 0.5  # it waited for the write, then built
    assert index_state(build.index.name) is True


def test_an_invalid_index_left_by_a_failed_build_is_built_again(migration):
    """A build that failed (cancelled, its deploy killed) leaves an invalid index of the
    name: IF NOT EXISTS took it for the index, the migration was recorded as done, and the
    reads it was for went back to scanning the table."""
    build, columns = migration
    run(build)
    with connection.cursor() as cursor:  # what a failed CONCURRENTLY build leaves
        cursor.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass",
            [build.index.name],
        )
    assert index_state(build.index.name) is False
    run(build)
    assert index_state(build.index.name) is True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_indexdef(%s::regclass)", [build.index.name])
        (definition,) = cursor.fetchone()
    assert columns in definition


# -- A partitioned table (the usage log, by day) ----------------------------------------------


@pytest.fixture
def usage_build():
    """usage 0009's index of a key's calls to one agent, dropped first and built again
    after. PostgreSQL refuses CREATE INDEX CONCURRENTLY on a partitioned table."""
    if connection.vendor != "postgresql":
        pytest.skip("CONCURRENTLY is PostgreSQL's: SQLite builds an ordinary index")
    build = importlib.import_module("usage.migrations.0009_agent_indexes").BY_KEY
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [build.table])
        assert cursor.fetchone()[0] == "p", "the usage log is partitioned in the tests"
        cursor.execute(f"DROP INDEX IF EXISTS {build.index.name}")
    yield build
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {build.index.name}")
    run(build)


def partitions_indexed(build) -> tuple[int, int]:
    """How many partitions the table has, and how many have a valid index attached to the
    build's."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass", [build.table]
        )
        (partitions,) = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM pg_inherits i JOIN pg_index x ON x.indexrelid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass AND x.indisvalid",
            [build.index.name],
        )
        (indexed,) = cursor.fetchone()
    return partitions, indexed


def test_a_partitioned_tables_index_is_built_on_each_partition_while_it_is_written(
    usage_build, short_lock_timeout
):
    with another_connection() as other:
        other.execute(f"LOCK TABLE {usage_build.table} IN ROW EXCLUSIVE MODE")
        finished = threading.Timer(1.0, other.rollback)
        finished.start()
        started = time.monotonic()
        try:
            run(usage_build)
        finally:
            finished.join()
    assert time.monotonic() - started >= 0.5
    assert index_state(usage_build.index.name) is True
    partitions, indexed = partitions_indexed(usage_build)
    assert partitions > 1 and indexed == partitions
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_indexdef(%s::regclass)", [usage_build.index.name])
        (definition,) = cursor.fetchone()
    assert "(api_key_id, agent, created_at DESC, id DESC)" in definition


def test_a_partitioned_build_that_failed_half_way_is_finished(usage_build):
    """Killed mid-way: the parent's index made, one partition's build left invalid and
    the rest not begun. Run again, it builds that one again and the others, and the
    parent's index is valid."""
    name, table = usage_build.index.name, usage_build.table
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE INDEX {name} ON ONLY {table} {usage_build.columns}")
        cursor.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass "
            "ORDER BY 1 LIMIT 1",
            [table],
        )
        (partition,) = cursor.fetchone()
        leftover = f"{name}_{partition.rsplit('_', 1)[-1]}"
        cursor.execute(f"CREATE INDEX {leftover} ON {partition} {usage_build.columns}")
        cursor.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", [leftover]
        )
    assert index_state(name) is False
    run(usage_build)
    assert index_state(name) is True
    partitions, indexed = partitions_indexed(usage_build)
    assert indexed == partitions
