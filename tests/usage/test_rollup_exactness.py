"""Every figure that a roll-up serves equals the count over the raw log rows for the same
filters: the hourly and per-address roll-ups the writer keeps, the key page's windows,
the per-key log, whose filtered pages the roll-ups fence in time, and the project
overview, at any filter and any range (to the minute), and after pruning."""

from __future__ import annotations

import ipaddress
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db.models import BooleanField, Count, ExpressionWrapper, Max, Min, Q
from django.db.models.functions import TruncDay, TruncHour

from accounts.models import Project
from apikeys.models import ApiKey
from apikeys.services import client_token_create, personal_token_create
from tests.conftest import usage_call
from usage.key_usage import LogFilters, key_usage_summary, usage_log_page
from usage.models import (
    Outcome,
    ProjectAddressDay,
    ProjectAddressHour,
    ProjectUsageDay,
    ProjectUsageHour,
    UsageHour,
    UsageIp,
    UsageRecord,
)
from usage.overview import (
    OverviewFilters,
    ProjectOverview,
    Tiles,
    TimeRange,
    project_usage_overview,
)
from usage.retention import usage_cutoff, usage_prune
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
    """Per key and address, its own calls and its client tokens' apart."""
    raw = {
        (row["api_key_id"], row["ip"], row["via"]): (row["n"], row["first"], row["last"])
        for row in UsageRecord.objects.filter(api_key__isnull=False, ip__isnull=False)
        .values(
            "api_key_id", "ip", via=ExpressionWrapper(Q(client_token__isnull=False), BooleanField())
        )
        .annotate(n=Count("id"), first=Min("created_at"), last=Max("created_at"))
    }
    rolled = {
        (u.api_key_id, u.ip, u.via_client_tokens): (u.requests, u.first_seen, u.last_seen)
        for u in UsageIp.objects.all()
    }
    assert rolled == raw
    assert any(via for _, _, via in raw) and not all(via for _, _, via in raw)


def test_the_key_pages_windows_equal_the_raw_counts(keys, traffic):
    for key in keys:
        summary = key_usage_summary(api_key=key, now=NOW)
        for window in summary.windows:
            rows = UsageRecord.objects.filter(
                api_key=key, created_at__gte=window.start, created_at__lt=window.end
            )
            assert window.totals.requests == rows.count()
            assert window.totals.ok == rows.filter(outcome=Outcome.OK).count()
            seen = UsageRecord.objects.filter(
                api_key=key, ip__isnull=False, created_at__gte=window.start
            )
            assert window.distinct_ips == (
                seen.filter(client_token__isnull=True).values("ip").distinct().count()
            )
            assert window.token_ips == (
                seen.filter(client_token__isnull=False).values("ip").distinct().count()
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


# -- The project overview's roll-ups -----------------------------------------------------------

AGENTS = ["my-agent", "support-bot", ""]


@pytest.fixture
def projects(keys, project, make_project, make_key, user) -> list[Project]:
    """The first project's traffic above, and more: a second project's keys, personal
    access tokens acting on either (or on none), agents, and calls without an address."""
    other = make_project(user, "Other")
    other_key, _ = make_key(other, "Other key")
    pat, _ = personal_token_create(user=user, name="CLI")
    rng = random.Random(41)
    entries = []
    for _ in range(500):
        status, code = rng.choice(STATUSES)
        at = NOW - timedelta(seconds=rng.randrange(8 * 24 * 3600))
        who = rng.choice(
            [
                {"key": rng.choice(keys)},
                {"key": other_key},
                {"pat": pat, "project": rng.choice([project, other])},
                {"pat": pat},
            ]
        )
        entries.append(
            usage_call(
                at,
                **who,
                status=status,
                error_code=code,
                ip=rng.choice(ADDRESSES),
                agent=rng.choice(AGENTS),
            )
        )
    for start in range(0, len(entries), 45):
        usage_write(entries[start : start + 45])
    usage_write(entries[90:135])  # again: counted once
    return [project, other]


@pytest.mark.parametrize(
    ("model", "truncate"), [(ProjectUsageHour, TruncHour), (ProjectUsageDay, TruncDay)]
)
def test_the_project_call_roll_ups_are_the_group_by_of_the_raw_rows(
    projects, traffic, model, truncate
):
    raw = {
        (
            row["project_id"],
            row["start"],
            row["token_kind"],
            row["api_key_id"],
            row["personal_token_id"],
            row["outcome"],
            row["agent"],
        ): (row["n"], row["no_ip"], row["last"])
        for row in UsageRecord.objects.filter(project__isnull=False)
        .values(
            "project_id",
            "token_kind",
            "api_key_id",
            "personal_token_id",
            "outcome",
            "agent",
            start=truncate("created_at", tzinfo=UTC),
        )
        .annotate(
            n=Count("id"), no_ip=Count("id", filter=Q(ip__isnull=True)), last=Max("created_at")
        )
    }
    rolled = {
        (
            r.project_id,
            r.start,
            r.token_kind,
            r.api_key_id,
            r.personal_token_id,
            r.outcome,
            r.agent,
        ): (r.requests, r.without_address, r.last_call)
        for r in model.objects.all()
    }
    assert rolled == raw
    assert {p for p, *_ in rolled} == {p.pk for p in projects}


@pytest.mark.parametrize(
    ("model", "truncate"), [(ProjectAddressHour, TruncHour), (ProjectAddressDay, TruncDay)]
)
def test_the_project_address_roll_ups_are_the_group_by_of_the_raw_rows(
    projects, traffic, model, truncate
):
    raw = {
        (row["project_id"], row["start"], row["ip"], row["outcome"]): (
            row["n"],
            row["first"],
            row["last"],
        )
        for row in UsageRecord.objects.filter(project__isnull=False, ip__isnull=False)
        .values("project_id", "ip", "outcome", start=truncate("created_at", tzinfo=UTC))
        .annotate(n=Count("id"), first=Min("created_at"), last=Max("created_at"))
    }
    rolled = {
        (r.project_id, r.start, r.ip, r.outcome): (r.requests, r.first_seen, r.last_seen)
        for r in model.objects.all()
    }
    assert rolled == raw


def _ip_order(ip: str) -> tuple[int, int]:
    address = ipaddress.ip_address(ip)
    return address.version, int(address)


def _raw_overview(project: Project, filters: OverviewFilters) -> dict[str, Any]:
    """The overview's figures counted straight from the log rows, in Python."""
    rows = list(filters.records(project))
    step = "day" if filters.time_range.by_day else "hour"

    def bucket(at: datetime) -> datetime:
        at = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return at.replace(hour=0) if step == "day" else at

    buckets: Counter[datetime] = Counter(bucket(r.created_at) for r in rows)
    callers: dict[tuple[str, int], list[Any]] = {}
    for r in rows:
        caller = ("key", r.api_key_id) if r.api_key_id else ("pat", r.personal_token_id or 0)
        seen = callers.setdefault(caller, [0, r.created_at])
        seen[0] += 1
        seen[1] = max(seen[1], r.created_at)
    addresses: dict[str, list[Any]] = {}
    for r in rows:
        if r.ip is None:
            continue
        seen = addresses.setdefault(str(r.ip), [0, r.created_at, r.created_at])
        seen[0] += 1
        seen[1] = min(seen[1], r.created_at)
        seen[2] = max(seen[2], r.created_at)
    agents = Counter(r.agent for r in rows if r.agent)
    ranked = sorted(
        addresses.items(), key=lambda a: (-a[1][0], -a[1][2].timestamp(), _ip_order(a[0]))
    )
    return {
        "requests": len(rows),
        "errors": sum(r.outcome != Outcome.OK for r in rows),
        "auth": sum(r.outcome in (Outcome.AUTH_FAILURE, Outcome.REVOKED_KEY) for r in rows),
        "without_address": sum(r.ip is None for r in rows),
        "buckets": {b: n for b, n in buckets.items()},
        "callers": {c: (n, last) for c, (n, last) in callers.items()},
        "distinct_ips": len(addresses),
        "top_addresses": [(ip, n, first, last) for ip, (n, first, last) in ranked[:10]],
        "top_agents": sorted(agents.items(), key=lambda a: (-a[1], a[0]))[:10],
    }


def _shown(overview: ProjectOverview) -> dict[str, Any]:
    def caller_id(c: Any) -> tuple[str, int]:
        if c.api_key is not None:
            return ("key", c.api_key.pk)
        return ("pat", c.personal_token.pk if c.personal_token else 0)

    return {
        "requests": overview.totals.requests,
        "errors": overview.totals.errors,
        "auth": overview.totals.auth_failures,
        "without_address": overview.calls_without_address,
        "buckets": {b.start: b.counts.requests for b in overview.buckets if b.counts.requests},
        "callers": {caller_id(c): (c.counts.requests, c.last_call) for c in overview.callers},
        "distinct_ips": overview.distinct_ips,
        "top_addresses": [
            (a.ip, a.requests, a.first_seen, a.last_seen) for a in overview.top_addresses
        ],
        "top_agents": [(a.agent, a.counts.requests) for a in overview.top_agents],
    }


def test_every_overview_figure_equals_the_raw_rows_for_any_filters_and_range(
    projects, keys, traffic
):
    rng = random.Random(7)
    project = projects[0]
    checked_edges = 0
    for n in range(80):
        if n % 3 == 0:
            days = rng.choice([1, 7, 8])
            time_range = TimeRange.last_days(days, now=NOW, name="preset")
        elif n % 3 == 1:
            time_range = TimeRange.last_hours(rng.choice([1, 24, 48]), now=NOW, name="preset")
        else:
            # A custom range, to the minute: partial hours and days at both ends.
            since = NOW - timedelta(minutes=rng.randrange(10, 8 * 24 * 60))
            until = since + timedelta(minutes=rng.randrange(1, 4 * 24 * 60))
            time_range = TimeRange(since, until, "custom")
            tiles = Tiles.of(since, until)
            checked_edges += bool(tiles.days and tiles.hours and tiles.minutes)
        filters = OverviewFilters(
            time_range=time_range,
            api_key=rng.choice([None, None, *keys]),
            token_kind=rng.choice(["", "", "api_key", "client_token", "personal_access_token"]),
            outcome=rng.choice(["", "", *COLUMNS]),
            ip=rng.choice(["", "", "", *[a for a in ADDRESSES if a]]),
        )
        overview = project_usage_overview(project=project, filters=filters)
        assert _shown(overview) == _raw_overview(project, filters), filters
    assert checked_edges > 5  # ranges read from days, hours and minutes at once


def test_pruning_inside_a_day_keeps_every_roll_up_exact(projects, traffic):
    cutoff = usage_cutoff(older_than=timedelta(days=3, hours=7), now=NOW)
    assert cutoff.hour != 0
    usage_prune(older_than=timedelta(days=3, hours=7), now=NOW)
    assert not UsageRecord.objects.filter(created_at__lt=cutoff).exists()
    for model, truncate in ((ProjectUsageHour, TruncHour), (ProjectUsageDay, TruncDay)):
        test_the_project_call_roll_ups_are_the_group_by_of_the_raw_rows(
            projects, traffic, model, truncate
        )
    for model, truncate in ((ProjectAddressHour, TruncHour), (ProjectAddressDay, TruncDay)):
        test_the_project_address_roll_ups_are_the_group_by_of_the_raw_rows(
            projects, traffic, model, truncate
        )


def test_one_address_in_two_spellings_in_one_batch_is_one_row_of_each_address_roll_up(
    make_key, project
):
    """The roll-ups are written in one statement a batch, and PostgreSQL refuses to update
    one row twice in a statement: "2001:DB8::1" and "2001:db8::1" are one inet, so the
    writer counts them as one address before it writes (an entry made by hand, or a
    server that reports addresses in capitals)."""
    key, _ = make_key(project, "Spelled twice")
    at = NOW - timedelta(minutes=5)
    usage_write(
        [
            usage_call(at, key=key, ip="2001:DB8::1"),
            usage_call(at + timedelta(seconds=1), key=key, ip="2001:db8:0::1"),
            usage_call(at + timedelta(seconds=2), key=key, ip="2001:db8::1"),
        ]
    )
    assert UsageRecord.objects.filter(api_key=key).count() == 3
    (row,) = UsageIp.objects.filter(api_key=key)
    assert (ipaddress.ip_address(row.ip), row.requests) == (ipaddress.ip_address("2001:db8::1"), 3)
    for model in (ProjectAddressHour, ProjectAddressDay):
        (rollup,) = model.objects.filter(project=project)
        assert (ipaddress.ip_address(rollup.ip), rollup.requests) == (
            ipaddress.ip_address("2001:db8::1"),
            3,
        )
