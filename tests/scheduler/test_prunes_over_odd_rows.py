"""The pruning jobs over what one tenant's rows may hold at their oddest: dates at the first
and the last moment there is, counts at their column's largest, NUL in text where the
database keeps it (SQLite; PostgreSQL refuses it in text), names and keys as long as they
may be. Each job runs to its end and removes every tenant's old rows, the odd ones too,
and keeps every tenant's current ones."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from accounts.models import PendingSecondStep, SignedInSession, UsedPasskeyChallenge
from api.models import IdempotencyRecord
from tests.conftest import usage_call
from usage.models import (
    ProjectAddressDay,
    ProjectAddressHour,
    ProjectUsageDay,
    ProjectUsageHour,
    UnattributedCalls,
    UsageHour,
    UsageIp,
    UsageRecord,
)
from usage.writer import usage_write

FIRST_MOMENT = datetime(1, 1, 1, tzinfo=UTC)
LAST_MOMENT = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
LARGEST_COUNT = 2**31 - 1  # PostgreSQL's integer; the counts are PositiveIntegerFields
LARGEST_STATUS = 32767  # a PositiveSmallIntegerField's largest on every database
NUL = "\x00" if connection.vendor == "sqlite" else ""


def odd(text: str, length: int) -> str:
    return (f"{text}{NUL}\u202e\r\n" + "ü" * length)[:length]


@pytest.fixture(autouse=True)
def _batches_of_two(monkeypatch):
    monkeypatch.setattr("core.batched_delete.DELETE_BATCH", 2)


def test_idempotency_records_of_any_date_and_content_are_pruned_or_kept_as_their_age_says(
    project, make_user, make_project
):
    theirs = make_project(make_user(email="other@example.com"))
    now = timezone.now()
    for n, when in enumerate((FIRST_MOMENT, LAST_MOMENT, FIRST_MOMENT, LAST_MOMENT)):
        IdempotencyRecord.objects.create(
            project=project,
            key=odd(f"odd-{n}", 255),
            fingerprint=odd("f", 64),
            caller=odd("c", 64),
            status=LARGEST_STATUS,
            body=odd("{", 5000),
            created_at=when,
        )
    for name, when in (("stale", now - timedelta(days=2)), ("fresh", now)):
        for owner in (project, theirs):
            IdempotencyRecord.objects.create(
                project=owner, key=name, fingerprint="f", status=200, created_at=when
            )
    out = io.StringIO()
    call_command("prune_idempotency_records", stdout=out)
    assert out.getvalue().strip() == "Removed 6 idempotency records."
    assert sorted(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh", "fresh"]


@pytest.mark.django_db(transaction=True)
def test_usage_and_its_roll_ups_of_any_date_and_count_are_pruned_or_kept(
    api_key, make_user, make_project, make_key
):
    key = api_key[0]
    theirs, _ = make_key(make_project(make_user(email="other@example.com")))
    now = timezone.now()
    long_ago = now - timedelta(days=100)
    calls = []
    for n, (owner, when) in enumerate(
        (
            (key, FIRST_MOMENT),
            (key, LAST_MOMENT - timedelta(hours=1)),  # kept: the future is after any cut-off
            (key, long_ago),
            (theirs, long_ago),
            (theirs, now),
            (None, FIRST_MOMENT),
            (None, long_ago),
        )
    ):
        call = usage_call(
            when,
            key=owner,
            status=200 if owner else 401,
            error_code="" if owner else "invalid_api_key",
            ip="ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" if n % 2 else "0.0.0.0",
            agent=odd("agent", 64) if owner else "",
            user_agent=odd("UA", 500),
        )
        calls.append(replace(call, request_id=f"call-{n}"))
    usage_write(calls)
    # Counts at their largest, on rows of the first moment and of long ago.
    for model in (UsageHour, UsageIp, ProjectUsageHour, ProjectUsageDay, ProjectAddressHour):
        model.objects.update(requests=LARGEST_COUNT)
    UnattributedCalls.objects.update(count=LARGEST_COUNT)
    ProjectAddressDay.objects.update(requests=LARGEST_COUNT)

    out = io.StringIO()
    call_command("prune_usage", older_than="90d", stdout=out)
    assert "Removed 3 calls in all." in out.getvalue()
    assert set(UsageRecord.objects.values_list("request_id", flat=True)) == {"call-1", "call-4"}
    far, recent = LAST_MOMENT - timedelta(hours=1), now - timedelta(hours=1)
    assert all(hour > recent for hour in UsageHour.objects.values_list("hour", flat=True))
    assert UsageHour.objects.count() == 2 and UsageIp.objects.count() == 2
    assert not UnattributedCalls.objects.exists()
    for model in (ProjectUsageHour, ProjectAddressHour, ProjectUsageDay, ProjectAddressDay):
        starts = model.objects.values_list("start", flat=True)
        assert len(starts) == 2 and all(start > recent - timedelta(days=1) for start in starts)
    assert far > recent


def test_ended_sessions_of_any_date_and_content_are_cleared_and_live_ones_kept(user):
    now = timezone.now()
    for key, expires in (("ended-at-the-first-moment", FIRST_MOMENT), ("live", LAST_MOMENT)):
        Session.objects.create(session_key=key, session_data=odd("x", 2000), expire_date=expires)
    for n, when in enumerate((FIRST_MOMENT, LAST_MOMENT, now - timedelta(days=2))):
        key = odd(f"gone-{n}", 40)
        SignedInSession.objects.create(
            user=user, session_key=key, user_agent=odd("UA", 300), last_seen_at=when
        )
        PendingSecondStep.objects.create(user=user, session_key=key, started_at=when)
    SignedInSession.objects.create(user=user, session_key="live", last_seen_at=FIRST_MOMENT)
    for n, when in enumerate((FIRST_MOMENT, now - timedelta(days=2), LAST_MOMENT)):
        UsedPasskeyChallenge.objects.create(digest=f"{n:064x}", used_at=when)

    call_command("clear_sessions", stdout=io.StringIO())

    assert list(Session.objects.values_list("session_key", flat=True)) == ["live"]
    # A record dated ahead is a session seen "later": kept until its session has ended
    # and it is an hour old, as any.
    assert sorted(SignedInSession.objects.values_list("session_key", flat=True)) == sorted(
        ["live", odd("gone-1", 40)]
    )
    assert list(PendingSecondStep.objects.values_list("session_key", flat=True)) == [
        odd("gone-1", 40)
    ]
    assert list(UsedPasskeyChallenge.objects.values_list("used_at", flat=True)) == [LAST_MOMENT]
