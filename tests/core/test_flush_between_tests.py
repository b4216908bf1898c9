"""The flush after a transactional test (tests/conftest.py): it leaves every table empty,
the usage log's partitions included, and on PostgreSQL touches only the tables that hold
rows (a TRUNCATE of every table cost ~2 s a test there)."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from tests.conftest import statements_run, usage_call
from usage.models import UsageRecord
from usage.writer import usage_write


def flush() -> None:
    """As TransactionTestCase's teardown calls it (available_apps unset)."""
    call_command(
        "flush",
        verbosity=0,
        interactive=False,
        reset_sequences=False,
        allow_cascade=False,
        inhibit_post_migrate=True,
    )


def tables_with_rows() -> list[str]:
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        return [
            table
            for table in tables
            if cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {quote(table)})").fetchone()[0]
        ]


@pytest.mark.django_db(transaction=True)
def test_the_flush_leaves_every_table_empty_and_ids_going_on(api_key, make_user):
    key, _ = api_key
    usage_write([usage_call(timezone.now(), key=key)])
    assert UsageRecord.objects.exists()
    last_id = key.created_by_id

    flush()

    assert tables_with_rows() == []
    assert make_user().pk > last_id


@pytest.mark.django_db(transaction=True)
def test_the_flush_on_postgresql_touches_only_the_tables_that_hold_rows(api_key):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's flush is Django's own DELETE of every table")
    filled = tables_with_rows()

    with statements_run() as statements:
        flush()

    changes = [sql for sql in statements if not sql.lstrip().upper().startswith("SELECT")]
    assert sorted(changes) == sorted(f'DELETE FROM "{table}";' for table in filled)
