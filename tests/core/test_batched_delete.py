"""core.batched_delete: over an order column that holds NULLs every matching row goes, on
PostgreSQL (which sorts NULLs last) as on SQLite (first); along the primary key, spans with
nothing to delete are passed in a read or two, and every matching row still goes, a
bounded batch a statement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from accounts.models import RecoveryCode
from core.batched_delete import delete_in_batches, delete_in_key_ranges

AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("recheck", [False, True])
def test_rows_without_a_value_of_the_order_column_are_deleted_too(
    recheck, user, make_user, monkeypatch
):
    """Each read resumes at the last batch's value (>=), which no NULL is: on PostgreSQL,
    where NULLs come after every value, the rows without one were never read, and the
    helper returned with them left (the docstring said the read then starts over)."""
    monkeypatch.setattr("core.batched_delete.DELETE_BATCH", 2)
    other = make_user(email="grace@example.com")
    codes = [
        RecoveryCode(user=user, code_hash=f"{n:064x}", used_at=AT + timedelta(minutes=n))
        for n in range(3)
    ] + [RecoveryCode(user=user, code_hash=f"{n:064x}", used_at=None) for n in range(3, 6)]
    RecoveryCode.objects.bulk_create(
        [*codes, RecoveryCode(user=other, code_hash="f" * 64, used_at=None)]
    )

    gone = delete_in_batches(
        RecoveryCode.objects.filter(user=user), order_by="used_at", recheck=recheck
    )
    assert gone == 6
    assert list(RecoveryCode.objects.values_list("user", flat=True)) == [other.pk]


def many_codes(user, n: int, *, old: set[int]) -> None:
    """`n` recovery codes of `user` in the order of their keys; those numbered in `old`
    used before AT, the rest unused."""
    RecoveryCode.objects.bulk_create(
        RecoveryCode(
            user=user, code_hash=f"{i:064x}", used_at=AT - timedelta(days=1) if i in old else None
        )
        for i in range(n)
    )


def statements_of(run) -> tuple[int, list[int]]:
    """How many statements `run()` made, and how many rows each of its DELETEs removed."""
    deleted: list[int] = []
    count = [0]

    def watch(execute, sql, params, many, context):
        count[0] += 1
        result = execute(sql, params, many, context)
        if sql.startswith("DELETE"):
            deleted.append(context["cursor"].rowcount)
        return result

    with connection.execute_wrapper(watch):
        run()
    return count[0], deleted


def test_a_key_range_walk_with_nothing_to_delete_skips_the_table_in_long_bounded_reads(
    user, monkeypatch
):
    """Each night's prune walked every roll-up's primary key a DELETE_BATCH range at a
    time, two statements a range, though nothing was old: 100,000 ranges for a
    100-million-row UsageIp. Now a range of SKIP_SPAN batches is asked first whether
    anything in it is to go, and passed whole if not."""
    monkeypatch.setattr("core.batched_delete.DELETE_BATCH", 3)
    many_codes(user, 60, old=set())
    made, deleted = statements_of(
        lambda: delete_in_key_ranges(RecoveryCode.objects.filter(used_at__lt=AT))
    )
    assert made <= 4  # a span's end and its check, twice at most: the walk took 40
    assert sum(deleted) == 0
    assert RecoveryCode.objects.count() == 60


@pytest.mark.parametrize(
    "old",
    [set(range(20)), {0, 7, 30, 58, 59}, set(range(25, 35)), set(range(60))],
    ids=["first-third", "scattered", "middle", "all"],
)
def test_a_key_range_walk_deletes_every_matching_row_a_bounded_batch_a_statement(
    old, user, make_user, monkeypatch
):
    monkeypatch.setattr("core.batched_delete.DELETE_BATCH", 3)
    monkeypatch.setattr("core.batched_delete.SKIP_SPAN", 4)
    many_codes(user, 60, old=old)
    other = make_user(email="grace@example.com")
    RecoveryCode.objects.create(user=other, code_hash="f" * 64, used_at=AT - timedelta(days=2))

    _, deleted = statements_of(
        lambda: delete_in_key_ranges(RecoveryCode.objects.filter(user=user, used_at__lt=AT))
    )
    assert sum(deleted) == len(old)
    assert all(rows <= 3 for rows in deleted)
    assert not RecoveryCode.objects.filter(user=user, used_at__lt=AT).exists()
    assert RecoveryCode.objects.filter(user=user).count() == 60 - len(old)
    assert RecoveryCode.objects.filter(user=other).count() == 1
