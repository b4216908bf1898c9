"""The flush after a transactional test (tests/conftest.py): it leaves every table empty,
the usage log's partitions included, but for the content types and permissions that its
post_migrate signal writes; on PostgreSQL it touches only the tables that hold rows (a
TRUNCATE of every table, and those rows written anew, cost ~2.5 s a test there)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from tests.conftest import statements_run, usage_call
from usage.models import UsageRecord
from usage.writer import usage_write

WRITTEN_BACK = {ContentType._meta.db_table, Permission._meta.db_table}


def flush() -> None:
    """As TransactionTestCase's teardown calls it (available_apps unset)."""
    call_command("flush", verbosity=0, interactive=False, reset_sequences=False)


def tables_with_rows() -> set[str]:
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        return {
            table
            for table in tables
            if cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {quote(table)})").fetchone()[0]
        }


def content_types_and_permissions() -> tuple[set[tuple[str, str]], set[tuple[str, str, str]]]:
    return (
        set(ContentType.objects.values_list("app_label", "model")),
        set(
            Permission.objects.values_list(
                "content_type__app_label", "content_type__model", "codename"
            )
        ),
    )


@pytest.mark.django_db(transaction=True)
def test_the_flush_empties_every_table_but_what_post_migrate_writes(api_key, make_user):
    key, _ = api_key
    usage_write([usage_call(timezone.now(), key=key)])
    assert UsageRecord.objects.exists()
    last_id = key.created_by_id
    every_model = content_types_and_permissions()
    assert len(every_model[0]) > 40

    flush()

    assert tables_with_rows() == WRITTEN_BACK
    assert content_types_and_permissions() == every_model
    assert make_user().pk > last_id


@pytest.mark.django_db(transaction=True)
def test_the_flush_on_postgresql_deletes_from_the_tables_that_hold_rows_and_no_more(api_key):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's flush is Django's own DELETE of every table")
    filled = tables_with_rows() - WRITTEN_BACK

    with statements_run() as statements:
        flush()

    changes = [sql for sql in statements if not sql.lstrip().upper().startswith("SELECT")]
    assert sorted(changes) == sorted(f'DELETE FROM "{table}";' for table in filled)
