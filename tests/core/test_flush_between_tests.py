"""The flush after a transactional test (tests/conftest.py): it leaves every table empty,
the usage log's partitions included, but for the content types and permissions that its
post_migrate signal writes, which it leaves as they are on both databases (written anew,
they cost ~0.3 s a test on PostgreSQL); on PostgreSQL it touches only the tables that hold
rows (a TRUNCATE of every table cost ~2.5 s a test there)."""

from __future__ import annotations

import threading
from urllib.request import urlopen

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.core.signals import request_started
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


def writes(statements: list[str]) -> list[str]:
    """The statements that change rows: not the reads, nor SQLite's BEGIN IMMEDIATE."""
    return [sql for sql in statements if sql.split()[0].upper() not in {"SELECT", "BEGIN"}]


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
def test_the_flush_leaves_content_types_and_permissions_as_they_are(api_key):
    rows_before = (
        list(ContentType.objects.order_by("pk").values_list()),
        list(Permission.objects.order_by("pk").values_list()),
    )

    with statements_run() as statements:
        flush()

    assert (
        list(ContentType.objects.order_by("pk").values_list()),
        list(Permission.objects.order_by("pk").values_list()),
    ) == rows_before
    quoted = [connection.ops.quote_name(table) for table in WRITTEN_BACK]
    changes = writes(statements)
    assert not [sql for sql in changes if any(table in sql for table in quoted)]


@pytest.mark.django_db(transaction=True)
def test_a_content_type_or_permission_a_test_deleted_is_written_back_by_the_flush(api_key):
    every_model = content_types_and_permissions()
    ContentType.objects.get(app_label="apikeys", model="apikey").delete()
    Permission.objects.filter(codename="view_user").delete()

    flush()

    assert content_types_and_permissions() == every_model


@pytest.mark.django_db(transaction=True)
def test_the_flush_on_sqlite_deletes_from_every_other_table(api_key):
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's flush deletes from the tables that hold rows (below)")
    every_table = connection.introspection.django_table_names(
        only_existing=True, include_views=False
    )

    with statements_run() as statements:
        flush()

    changes = writes(statements)
    assert sorted(changes) == sorted(
        f'DELETE FROM "{table}";' for table in set(every_table) - WRITTEN_BACK
    )


@pytest.mark.django_db(transaction=True)
def test_the_flush_on_postgresql_deletes_from_the_tables_that_hold_rows_and_no_more(api_key):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's flush deletes from every table (above)")
    filled = tables_with_rows() - WRITTEN_BACK

    with statements_run() as statements:
        flush()

    changes = writes(statements)
    assert sorted(changes) == sorted(f'DELETE FROM "{table}";' for table in filled)


def test_the_flush_waits_for_the_live_server_to_finish_answering(live_server, transactional_db):
    """A request the live server is still answering when the test ends (its page closed,
    the view going on in the server's thread) holds the flush back until it is answered:
    on SQLite that thread shares the test's connection, and a flush while it read a table
    failed with "database table is locked", leaving the test's rows for the next test."""
    import tests.conftest as shared

    entered, release = threading.Event(), threading.Event()

    def hold(**kwargs: object) -> None:
        if threading.current_thread() is not threading.main_thread():
            entered.set()
            release.wait(5)

    answers: list[int] = []
    request_started.connect(hold)
    try:
        caller = threading.Thread(
            target=lambda: answers.append(urlopen(f"{live_server.url}/healthz").status)
        )
        caller.start()
        assert entered.wait(5)
        with pytest.raises(AssertionError, match="still answering a request"):
            shared._wait_for_other_threads_requests(timeout=0.2)
        release.set()
        caller.join(5)
        shared._wait_for_other_threads_requests(timeout=5)
    finally:
        release.set()
        request_started.disconnect(hold)
    assert answers == [200]

    waited: list[bool] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shared, "_wait_for_other_threads_requests", lambda: waited.append(True))
        flush()
    assert waited == [True]
