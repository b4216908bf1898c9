"""Row locks that Django's select_for_update() does not offer."""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.models import QuerySet
from django.db.transaction import TransactionManagementError


def key_share(queryset: QuerySet[Any]) -> list[Any]:
    """The primary keys of `queryset`'s rows, each locked FOR KEY SHARE until the
    transaction ends: the lock PostgreSQL takes on a row that a new foreign key points to.
    Nobody can delete one of them meanwhile (a DELETE, or a SELECT … FOR UPDATE, waits for
    this transaction to end), while reads, other such locks and updates of their other
    columns go on. A row that a transaction this waited for deleted is not returned.

    select_for_update() takes FOR UPDATE or FOR NO KEY UPDATE, which would also make two
    holders of one row wait for each other. SQLite, whose writers take turns, reads the
    rows without a lock."""
    return _locked(queryset, "KEY SHARE")


def share(queryset: QuerySet[Any]) -> list[Any]:
    """As key_share, FOR SHARE: nobody can change any column of the rows meanwhile (an
    UPDATE, or select_for_update() of either kind, waits), while reads and the other
    holders of FOR SHARE or FOR KEY SHARE go on. A row that a transaction this waited for
    changed is returned only if it still matches the queryset's filter."""
    return _locked(queryset, "SHARE")


def _locked(queryset: QuerySet[Any], strength: str) -> list[Any]:
    connection = connections[queryset.db]
    if not connection.in_atomic_block:
        raise TransactionManagementError("Row locks hold rows until a transaction ends.")
    ids = queryset.values_list("pk", flat=True)
    if connection.vendor != "postgresql":
        return list(ids)
    sql, params = ids.query.get_compiler(using=queryset.db).as_sql()
    table = connection.ops.quote_name(queryset.model._meta.db_table)
    with connection.cursor() as cursor:
        # OF: only this table's rows, whatever the filter joins.
        cursor.execute(f"{sql} FOR {strength} OF {table}", params)
        return [row[0] for row in cursor.fetchall()]
