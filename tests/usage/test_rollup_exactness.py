"""Every figure that a roll-up serves equals the count over the raw log rows for the same
filters: the hourly and per-address roll-ups the writer keeps, the key page's windows,
and the per-key log, whose filtered pages the roll-ups fence in time."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Count, Max, Min
from django.db.models.functions import TruncHour

from apikeys.models import ApiKey
from apikeys.services import client_token_create
from tests.conftest import usage_call
from usage.key_usage import LogFilters, key_usage_summary, usage_log_page
from usage.models import Outcome, UsageHour, UsageIp, UsageRecord
from usage.writer import UsageEntry, usage_write

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
STATUSES = [(200, ""), (200, ""), (200, ""), (400, "invalid_field_value"), (403, "forbidden")]
STATUSES += [(401, "expired_api_key"), (500, "internal_error"), (429, "rate_limit_exceeded")]
ADDRESSES = ["10.0.0.1", "10.0.0.2", "203.0.113.9", "2001:db8::1", None]
COLUMNS = {
    Outcome.OK: "ok",
    Outcome.CLIENT_ERROR: "client_errors",
    Outcome.AUTH_FAILURE: "auth_failures",
    Outcome.REVOKED_KEY: "revoked_key_uses",
    Outcome.SERVER_ERROR: "server_errors",
}


@pytest.fixture
def keys(make_key, project) -> list[ApiKey]:
    return [make_key(project, f"Key {n}")[0] for n in range(3)]


@pytest.fixture
def traffic(keys, project) -> random.Random:
    """A few hundred calls over eight days, of three keys and a client token, written in
    batches as the ingest would (some of them twice, as after a lost acknowledgement)."""
    rng = random.Random(14)
    token, _ = client_token_create(project=project, context={}, api_key=keys[0])
    entries: list[UsageEntry] = []
    for _ in range(600):
        status, code = rng.choice(STATUSES)
        at = NOW - timedelta(seconds=rng.randrange(8 * 24 * 3600))
        who = {"client_token": token} if rng.random() < 0.2 else {"key": rng.choice(keys)}
        entries.append(
            usage_call(
                at,
                **who,
                status=status,
                error_code=code,
                ip=rng.choice(ADDRESSES),
                latency_us=rng.randrange(500, 90_000),
            )
        )
    for start in range(0, len(entries), 70):
        usage_write(entries[start : start + 70])
    usage_write(entries[:70])  # written again: counted once
    return rng


def test_each_hour_of_each_key_counts_exactly_its_rows_by_outcome(keys, traffic):
    for _ in range(40):
        key = traffic.choice(keys)
        since = NOW - timedelta(hours=traffic.randrange(1, 8 * 24))
        until = since + timedelta(hours=traffic.randrange(1, 72))
        outcome = traffic.choice(list(COLUMNS))
        hours = UsageHour.objects.filter(api_key=key, hour__gte=since, hour__lt=until)
        rolled = sum(getattr(h, COLUMNS[outcome]) for h in hours)
        raw = UsageRecord.objects.filter(
            api_key=key,
            outcome=outcome,
            created_at__gte=since.replace(minute=0),
            created_at__lt=until.replace(minute=0),
        ).count()
        assert rolled == raw, (key, since, until, outcome)


def test_the_hourly_roll_up_is_the_group_by_of_the_raw_rows(keys, traffic):
    raw = {
        (row["api_key_id"], row["hour"]): row["n"]
        for row in UsageRecord.objects.filter(api_key__isnull=False)
        .values("api_key_id", hour=TruncHour("created_at", tzinfo=UTC))
        .annotate(n=Count("id"))
    }
    rolled = {(h.api_key_id, h.hour): h.requests for h in UsageHour.objects.all()}
    assert rolled == raw
    assert sum(rolled.values()) == UsageRecord.objects.filter(api_key__isnull=False).count()


def test_each_address_of_each_key_has_its_exact_count_and_first_and_last_call(keys, traffic):
    raw = {
        (row["api_key_id"], row["ip"]): (row["n"], row["first"], row["last"])
        for row in UsageRecord.objects.filter(api_key__isnull=False, ip__isnull=False)
        .values("api_key_id", "ip")
        .annotate(n=Count("id"), first=Min("created_at"), last=Max("created_at"))
    }
    rolled = {
        (u.api_key_id, u.ip): (u.requests, u.first_seen, u.last_seen) for u in UsageIp.objects.all()
    }
    assert rolled == raw


def test_the_key_pages_windows_equal_the_raw_counts(keys, traffic):
    for key in keys:
        summary = key_usage_summary(api_key=key, now=NOW)
        for window in summary.windows:
            rows = UsageRecord.objects.filter(
                api_key=key, created_at__gte=window.start, created_at__lt=window.end
            )
            assert window.totals.requests == rows.count()
            assert window.totals.ok == rows.filter(outcome=Outcome.OK).count()
            assert window.distinct_ips == (
                UsageIp.objects.filter(api_key=key, last_seen__gte=window.start).count()
            )


def test_filtered_log_pages_fenced_by_the_roll_ups_hold_exactly_the_matching_rows(keys, traffic):
    statuses = [s for s, _ in STATUSES]
    for _ in range(60):
        key = traffic.choice(keys)
        filters = LogFilters(
            outcome=traffic.choice(["", *COLUMNS]),
            status=traffic.choice([None, None, *statuses]),
            ip=traffic.choice(["", "", *[a for a in ADDRESSES if a], "192.0.2.1"]),
            since=traffic.choice([None, NOW - timedelta(days=traffic.randrange(1, 8))]),
        )
        page = usage_log_page(api_key=key, filters=filters, size=25)
        raw = filters.apply(UsageRecord.objects.for_key(key)).order_by("-created_at", "-id")
        assert [r.pk for r in page.rows] == [r.pk for r in raw[:25]], filters
