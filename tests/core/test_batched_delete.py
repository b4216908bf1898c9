"""core.batched_delete over an order column that holds NULLs: every matching row goes,
on PostgreSQL (which sorts NULLs last) as on SQLite (first)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import RecoveryCode
from core.batched_delete import delete_in_batches

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
