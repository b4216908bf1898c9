"""Deleting many rows a bounded batch at a time.

One DELETE of everything a condition matches (a queryset's delete(), Django's own
clear_expired) holds its rows' locks for the whole of it, and over a pile (a month of a
job not running, a flood of sign-ins) can outlast DB_STATEMENT_TIMEOUT: cancelled, it
deletes nothing, fails the same way at every run, and the table grows for good. Keys of at
most DELETE_BATCH rows are read along an index, then deleted by key, each batch its own
statement (and, in autocommit, its own transaction), so every run gets further.
"""

from __future__ import annotations

from django.db.models import Model, QuerySet

DELETE_BATCH = 1000  # rows per DELETE, so no one statement holds the table for long


def delete_in_batches[M: Model](rows: QuerySet[M], *, order_by: str, recheck: bool = False) -> int:
    """Delete `rows` DELETE_BATCH at a time, taken in `order_by` order (a column its
    condition's index covers, so each read stops after a batch); how many rows went,
    counting those deleted with them (as QuerySet.delete() counts). Without such an index,
    "pk": the read walks the primary key until it has a batch, and old rows come first.
    With `recheck`, each DELETE asks `rows`' condition again of the keys it names: for rows
    that another transaction may take out of it between the read and the delete (a
    delivery claimed by a sender).

    Each read starts where the last batch's ended (at its last value of `order_by`, ties
    included): started from the index's beginning, it stepped over the entries of every row
    deleted before it, which stay in the index until VACUUM, so a run slowed as it went."""
    removed = 0
    column = "pk" if order_by in ("pk", rows.model._meta.pk.name) else order_by
    if column != "pk" and rows.model._meta.get_field(column).null:
        # A NULL has no place to resume from, and PostgreSQL sorts NULLs after every value
        # (SQLite before): the rows without one go on their own, along the primary key.
        without = {f"{column}__isnull": True}
        removed += delete_in_batches(rows.filter(**without), order_by="pk", recheck=recheck)
        rows = rows.exclude(**without)
    deleting = rows if recheck else rows.model._default_manager.all()
    batch = rows.order_by(column)
    while found := list(batch.values_list("pk", column)[:DELETE_BATCH]):
        removed += deleting.filter(pk__in=[pk for pk, _ in found]).delete()[0]
        batch = rows.order_by(column).filter(**{f"{column}__gte": found[-1][1]})
    return removed


def delete_in_key_ranges[M: Model](rows: QuerySet[M]) -> int:
    """Delete `rows` where no index covers their condition (a time column that every write
    moves, a table of roll-ups keyed by tenant first), DELETE_BATCH rows of the table at a
    time: the primary key is walked in ranges of that many rows, and each range's rows that
    match are deleted in one statement. A read along the primary key for a batch of matching
    rows would pass over every row that does not match, however many, and the last one,
    which finds none, over the whole table: here no statement reads more than a range,
    whatever the table holds. How many rows went, as QuerySet.delete() counts them."""
    removed = 0
    table = rows.model._default_manager.order_by("pk")
    after = None
    while True:
        ahead = table if after is None else table.filter(pk__gt=after)
        # The range's last key: read along the primary key's index, never the rows.
        end = list(ahead.values_list("pk", flat=True)[DELETE_BATCH - 1 : DELETE_BATCH])
        within = rows if after is None else rows.filter(pk__gt=after)
        if not end:  # fewer than DELETE_BATCH rows are left past `after`: the last range
            return removed + within.delete()[0]
        removed += within.filter(pk__lte=end[0]).delete()[0]
        after = end[0]
