"""Deleting many rows a bounded batch at a time.

One DELETE of everything a condition matches (a queryset's delete(), Django's own
clear_expired) holds its rows' locks for the whole of it, and over a pile (a month of a
job not running, a flood of sign-ins) can outlast DB_STATEMENT_TIMEOUT: cancelled, it
deletes nothing, fails the same way at every run, and the table grows for good. Keys of at
most DELETE_BATCH rows are read along an index, then deleted by key, each batch its own
statement (and, in autocommit, its own transaction), so every run gets further.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Min, Model, QuerySet

DELETE_BATCH = 1000  # rows per DELETE, so no one statement holds the table for long
# delete_in_key_ranges asks this many ranges of DELETE_BATCH rows at once whether any of
# their rows is to go: a read of at most 100,000 rows, well inside the statement timeout.
SKIP_SPAN = 100


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
    which finds none, over the whole table: here no statement reads more than a span of
    SKIP_SPAN ranges, whatever the table holds. How many rows went, as QuerySet.delete()
    counts them.

    Walked range by range, a table with nothing to delete took two statements every
    DELETE_BATCH rows, each night: 2,000 for a million rows of UsageIp, 200,000 for a
    hundred million. So where the last range deleted nothing (and at the start) the span
    ahead is asked first for its first matching key, one read of at most its rows, and
    passed whole if it has none; the next range starts at that key. Where a range did
    delete, matches are likely near: the next range follows it without asking."""
    removed = 0
    table = rows.model._default_manager.order_by("pk")
    after: Any = None  # the last key dealt with; None before the first
    span_end: Any = None  # the current span's last key; None: the table's end
    span_known = False
    ask = True
    while True:
        ahead = table if after is None else table.filter(pk__gt=after)
        matching = rows if after is None else rows.filter(pk__gt=after)
        if ask:
            if not span_known:
                # Read along the primary key's index, never the rows.
                span_end, span_known = _nth_key(ahead, SKIP_SPAN * DELETE_BATCH), True
            if span_end is not None:
                matching = matching.filter(pk__lte=span_end)
            first = matching.aggregate(first=Min("pk"))["first"]
            if first is None:
                if span_end is None:
                    return removed
                after, span_known = span_end, False
                continue
            ahead, matching = table.filter(pk__gte=first), rows.filter(pk__gte=first)
        # The range's last key, as the span's.
        end = _nth_key(ahead, DELETE_BATCH)
        if end is None:  # fewer than DELETE_BATCH rows are left: the last range
            return removed + matching.delete()[0]
        gone = matching.filter(pk__lte=end).delete()[0]
        removed += gone
        after, ask = end, not gone
        if span_end is not None and end >= span_end:
            span_known = False  # past the span asked about: the next question is of the next


def _nth_key[M: Model](table: QuerySet[M], n: int) -> Any:
    """The key of the `n`th row of `table` (ordered by key), or None if it has fewer."""
    found = list(table.values_list("pk", flat=True)[n - 1 : n])
    return found[0] if found else None
