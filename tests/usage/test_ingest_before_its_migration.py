"""The usage log's writer deployed before its migration has run (the README has the ingest
upgraded first): the database refuses its SQL, whatever the records hold."""

from __future__ import annotations

from django.db import connection
from django.utils import timezone

from core import write_behind
from core.write_behind import Record
from tests.conftest import usage_call
from usage.models import UsageRecord


def _rename_column(old: str, new: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE apikeys_usagerecord RENAME COLUMN {old} TO {new}")


def test_records_wait_while_the_database_lacks_a_column_and_are_written_once_it_has_it(api_key):
    """On PostgreSQL a missing column is a ProgrammingError, which was taken for a fault of
    each record's content: every call logged until `migrate` ran was dropped, one by one.
    (SQLite calls it an OperationalError, which already waited.)"""
    key, _ = api_key
    records = [
        Record("usage", usage_call(timezone.now(), key=key, request_id=f"req_{n}").payload())
        for n in range(3)
    ]
    _rename_column("user_agent", "user_agent_later")  # the column this code writes is not there

    result = write_behind.write(records)

    assert (result.written, result.dropped, len(result.waiting)) == (0, 0, 3)

    _rename_column("user_agent_later", "user_agent")  # migrate has run
    assert write_behind.write(result.waiting).written == 3
    assert UsageRecord.objects.count() == 3
