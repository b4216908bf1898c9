"""The project's usage overview and its CSV export: figures that equal counts over the raw
log rows for the same filters, filters that narrow, errors beside their fields, and
nothing of another project, ever."""

from __future__ import annotations

import csv
import io
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Project, User
from apikeys.models import ApiKey
from apikeys.services import api_key_revoke, client_token_create, personal_token_create
from tests.conftest import HTMX, usage_call
from usage import overview
from usage import views as usage_views
from usage.models import Outcome, UsageRecord
from usage.overview import ProjectOverview, hour_of
from usage.writer import UsageEntry, usage_write

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
MINUTE_INPUT = "%Y-%m-%dT%H:%M"


def call(at: datetime, **fields: Any) -> UsageEntry:
    """One logged call, by a key, a client token (with the key or PAT that minted it), or
    a PAT acting on `project`."""
    return usage_call(at, **fields)


def overview_url(project: Project, **params: object) -> str:
    url = reverse("usage:project_usage", args=[project.slug])
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{url}?{query}" if query else url


def export_url(project: Project, **params: object) -> str:
    url = reverse("usage:project_usage_export", args=[project.slug])
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{url}?{query}" if query else url


def read_csv(response) -> list[dict[str, str]]:
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


OUTCOMES = [
    (200, ""),
    (200, ""),
    (200, ""),
    (200, ""),
    (400, "invalid_request"),
    (401, "invalid_api_key"),
    (403, "insufficient_permissions"),
    (401, "expired_api_key"),
    (404, "agent_not_found"),
    (500, "internal_error"),
]
ADDRESSES = ["203.0.113.7", "203.0.113.8", "198.51.100.23", "2001:db8::42", "192.0.2.1", None]
AGENTS = ["my-agent", "support-bot", "summarizer", ""]


@pytest.fixture
def now(hold_clock: Callable[..., datetime]) -> datetime:
    """The time now, which the usage pages read as the time now too: the ranges a test works
    out from it are the page's even if the hour turns mid-test. (At 23:59:59.98 the default
    range's test found the page's 24 hours starting an hour after its own.)"""
    return hold_clock(usage_views)


@pytest.fixture
def world(
    project: Project,
    user: User,
    make_user: Callable[..., User],
    make_project: Callable[..., Project],
    make_key: Callable[..., tuple[ApiKey, str]],
    now: datetime,
) -> dict[str, object]:
    """Three keys (one revoked), a client token of one, a member's PAT and a client token
    it minted, with some 900 calls of every kind and outcome over 40 days; and a second
    project, another person's, with calls from the same addresses to the same agents."""
    production, _ = make_key(project, "Production")
    staging, _ = make_key(project, "Staging")
    old, _ = make_key(project, "Old laptop")
    api_key_revoke(api_key=old, by=user)
    minted, _ = client_token_create(project=project, api_key=production, context={})
    pat, _ = personal_token_create(user=user, name="Laptop CLI")
    pat_minted, _ = client_token_create(project=project, personal_token=pat, context={})

    stranger = make_user(email="mallory@example.com")
    elsewhere = make_project(stranger, name="Elsewhere")
    foreign, _ = make_key(elsewhere, "Foreign")

    rng = random.Random(20250603)
    entries = []
    for _ in range(900):
        who = rng.choice(["production", "production", "staging", "old", "ct", "pat", "pat_ct"])
        status, code = rng.choice(OUTCOMES)
        at = now - timedelta(seconds=rng.randint(0, 40 * 86400))
        if rng.random() < 0.4:  # busier lately
            at = now - timedelta(seconds=rng.randint(0, 2 * 86400))
        by: dict[str, object] = {
            "production": {"key": production},
            "staging": {"key": staging},
            "old": {"key": old},
            "ct": {"client_token": minted},
            "pat": {"pat": pat, "project": project},
            "pat_ct": {"client_token": pat_minted},
        }[who]
        entries.append(
            call(
                at,
                status=status,
                error_code=code,
                ip=rng.choice(ADDRESSES),
                agent=rng.choice(AGENTS),
                latency_us=rng.randint(500, 90_000),
                **by,  # type: ignore[arg-type]
            )
        )
    for _ in range(150):
        entries.append(
            call(
                now - timedelta(seconds=rng.randint(0, 10 * 86400)),
                key=foreign,
                ip=rng.choice(ADDRESSES),
                agent=rng.choice(AGENTS),
            )
        )
    usage_write(entries)
    return {
        "production": production,
        "staging": staging,
        "old": old,
        "minted": minted,
        "pat": pat,
        "foreign": foreign,
        "elsewhere": elsewhere,
    }


def raw_rows(project: Project, overview: ProjectOverview) -> list[UsageRecord]:
    """The log rows that the overview's filters select, read without its code."""
    f = overview.filters
    rows = UsageRecord.objects.filter(
        project=project,
        created_at__gte=f.time_range.since,
        created_at__lt=f.time_range.until,
    )
    if f.api_key:
        rows = rows.filter(api_key_id=f.api_key.pk)
    if f.token_kind:
        rows = rows.filter(token_kind=f.token_kind)
    if f.outcome:
        rows = rows.filter(outcome=f.outcome)
    if f.ip:
        rows = rows.filter(ip=f.ip)
    return list(rows)


def failed(row: UsageRecord) -> bool:
    return row.outcome != Outcome.OK


def auth_failed(row: UsageRecord) -> bool:
    return row.outcome in (Outcome.AUTH_FAILURE, Outcome.REVOKED_KEY)


FILTER_COMBINATIONS = [
    {},
    {"range": "7d"},
    {"range": "30d", "token_kind": "client_token"},
    {"range": "30d", "key": "production", "outcome": "auth_failure"},
    {"range": "7d", "key": "production", "token_kind": "api_key", "stack": "key"},
    {"range": "30d", "token_kind": "personal_access_token", "stack": "outcome"},
    {"range": "30d", "ip": "2001:db8::42", "stack": "key"},
    {"range": "30d", "outcome": "revoked_key"},
    {"range": "custom", "since": "days:-9,h:-3,m:17", "until": "days:-1,h:+2,m:41"},
    {"since": "days:-1,h:-5,m:5"},
]


def resolve(params: dict[str, str], world: dict[str, object], now: datetime) -> dict[str, str]:
    """Test parameters as a query: key names as ids, "days:…" as minutes from now."""
    query = dict(params)
    if "key" in query:
        key = world[query["key"]]
        assert isinstance(key, ApiKey)
        query["key"] = str(key.pk)
    for name in ("since", "until"):
        if name in query:
            parts = dict(p.split(":") for p in query[name].split(","))
            moment = hour_of(now) + timedelta(days=int(parts["days"]), hours=int(parts["h"]))
            query[name] = (moment + timedelta(minutes=int(parts["m"]))).strftime(MINUTE_INPUT)
    return query


@pytest.mark.parametrize("params", FILTER_COMBINATIONS, ids=lambda p: ",".join(p) or "none")
def test_every_figure_equals_a_count_over_the_raw_rows_for_the_same_filters(
    signed_in, project, world, now, params
):
    response = signed_in.get(overview_url(project), resolve(params, world, now))
    assert response.status_code == 200
    overview: ProjectOverview = response.context["overview"]
    rows = raw_rows(project, overview)
    assert rows, "the seed should give every combination some calls"

    totals = overview.totals
    assert totals.requests == len(rows)
    assert totals.errors == sum(map(failed, rows))
    assert totals.auth_failures == sum(map(auth_failed, rows))
    assert overview.distinct_ips == len({r.ip for r in rows if r.ip})
    assert overview.calls_without_address == sum(1 for r in rows if r.ip is None)

    # The chart: each bar holds the rows of its hour (or day), split without loss.
    step = DAY if overview.time_range.by_day else HOUR
    per_bucket: Counter[datetime] = Counter()
    for r in rows:
        moment = r.created_at.astimezone(UTC)
        start = hour_of(moment).replace(hour=0) if step == DAY else hour_of(moment)
        per_bucket[start] += 1
    assert {b.start: b.counts.requests for b in overview.buckets if b.counts.requests} == dict(
        per_bucket
    )
    for bucket in overview.buckets:
        assert sum(bucket.count(s) for s in overview.series) == bucket.counts.requests
    assert sum(n for _, n in overview.series_totals) == len(rows)

    # Top addresses: the busiest, with their counts, share and first and last call.
    by_ip: dict[str, list[datetime]] = defaultdict(list)
    for r in rows:
        if r.ip:
            by_ip[r.ip].append(r.created_at)
    ranked = sorted((len(times) for times in by_ip.values()), reverse=True)
    assert [a.requests for a in overview.top_addresses] == ranked[:10]
    for address in overview.top_addresses:
        times = by_ip[address.ip]
        assert address.requests == len(times)
        assert address.first_seen == min(times)
        assert address.last_seen == max(times)
        assert address.share == pytest.approx(len(times) * 100 / len(rows))

    # Top agents: calls and failures per agent named.
    agents = Counter(r.agent for r in rows if r.agent)
    agent_failures = Counter(r.agent for r in rows if r.agent and failed(r))
    assert {a.agent: a.counts.requests for a in overview.top_agents} == dict(agents)
    assert {a.agent: a.counts.errors for a in overview.top_agents} == {
        a: agent_failures[a] for a in agents
    }

    # By key: a key's rows (its client tokens' included), or a PAT's.
    expected: dict[tuple[str, int], list[UsageRecord]] = defaultdict(list)
    for r in rows:
        who = ("key", r.api_key_id) if r.api_key_id else ("pat", r.personal_token_id)
        expected[who].append(r)  # type: ignore[arg-type]
    shown = {
        ("key", c.api_key.pk) if c.api_key else ("pat", c.personal_token.pk): c  # type: ignore[union-attr]
        for c in overview.callers
    }
    assert shown.keys() == expected.keys()
    for who, caller in shown.items():
        mine = expected[who]
        assert caller.counts.requests == len(mine)
        assert caller.counts.errors == sum(map(failed, mine))
        assert caller.counts.auth_failures == sum(map(auth_failed, mine))
        assert caller.last_call == max(r.created_at for r in mine)


def series_of(row: UsageRecord, stack: str, series_ids: list[str]) -> str:
    """Which of the chart's series a log row counts in, worked out without its code."""
    if stack == "outcome":
        return row.outcome
    if stack == "kind":
        return row.token_kind
    if row.api_key_id is None:
        return "pat"
    return f"key-{row.api_key_id}" if f"key-{row.api_key_id}" in series_ids else "other"


def counts_of(rows: list[UsageRecord]) -> tuple[int, int, int]:
    return len(rows), sum(map(failed, rows)), sum(map(auth_failed, rows))


def figures(counts: overview.Counts) -> tuple[int, int, int]:
    return counts.requests, counts.errors, counts.auth_failures


def added_up(many: list[overview.Counts]) -> tuple[int, int, int]:
    return (
        sum(c.requests for c in many),
        sum(c.errors for c in many),
        sum(c.auth_failures for c in many),
    )


@pytest.mark.parametrize("params", FILTER_COMBINATIONS, ids=lambda p: ",".join(p) or "none")
def test_each_cell_of_the_figures_table_and_each_caller_add_up_to_the_totals_row(
    signed_in, project, world, now, params, monkeypatch
):
    """The bars and the By key table are counted by separate queries, each grouped in the
    database: every cell of the figures table (a bar's calls, failures, refusals and each
    series) equals the raw rows it stands for, in every stacking, and the bars and the
    callers each add up to the totals."""
    monkeypatch.setattr(overview, "KEYS_IN_CHART", 1)  # the chart by key has "Other keys"
    for stack in ("outcome", "kind", "key"):
        query = {**resolve(params, world, now), "stack": stack}
        shown: ProjectOverview = signed_in.get(overview_url(project), query).context["overview"]
        rows = raw_rows(project, shown)
        step = DAY if shown.time_range.by_day else HOUR
        ids = [s.id for s in shown.series]
        if stack == "key" and len({r.api_key_id for r in rows if r.api_key_id}) > 1:
            assert "other" in ids

        for bucket, cells in shown.figure_rows:
            mine = [r for r in rows if bucket.start <= r.created_at < bucket.start + step]
            assert figures(bucket.counts) == counts_of(mine), (stack, bucket.start)
            assert cells == [sum(series_of(r, stack, ids) == s for r in mine) for s in ids]
        assert [n for _, n in shown.series_totals] == [
            sum(series_of(r, stack, ids) == s for r in rows) for s in ids
        ]
        assert figures(shown.totals) == counts_of(rows)
        assert added_up([b.counts for b in shown.buckets]) == figures(shown.totals)
        assert shown.more_callers == 0
        assert added_up([c.counts for c in shown.callers]) == figures(shown.totals)


@pytest.mark.parametrize("params", FILTER_COMBINATIONS, ids=lambda p: ",".join(p) or "none")
def test_the_export_holds_exactly_the_rows_the_overview_counted(
    signed_in, project, world, now, params
):
    query = resolve(params, world, now)
    page = signed_in.get(overview_url(project), query)
    overview: ProjectOverview = page.context["overview"]
    href = unescape(re.search(r'href="([^"]*export\.csv[^"]*)"', page.content.decode())[1])
    exported = read_csv(signed_in.get(href))
    expected = sorted(raw_rows(project, overview), key=lambda r: (r.created_at, r.pk), reverse=True)
    assert [row["request_id"] for row in exported] == [r.request_id for r in expected]
    assert len(exported) == overview.totals.requests


def test_the_default_range_is_the_last_24_hours_hour_by_hour(signed_in, project, api_key, now):
    key = api_key[0]
    start = hour_of(now) + HOUR - 24 * HOUR
    inside = [call(start, key=key), call(now, key=key), call(start + 5 * HOUR, key=key)]
    outside = [call(start - timedelta(microseconds=1), key=key), call(now - 3 * DAY, key=key)]
    usage_write(inside + outside)

    overview = signed_in.get(overview_url(project)).context["overview"]
    assert overview.time_range.since == start
    assert [b.start for b in overview.buckets] == [start + i * HOUR for i in range(24)]
    assert overview.totals.requests == 3
    assert overview.buckets[0].counts.requests == 1
    assert overview.buckets[5].counts.requests == 1


def test_ranges_longer_than_two_days_are_counted_day_by_day(signed_in, project, api_key, now):
    key = api_key[0]
    usage_write([call(now - i * DAY, key=key) for i in range(10)])
    week = signed_in.get(overview_url(project, range="7d")).context["overview"]
    assert week.time_range.by_day
    assert len(week.buckets) == 7
    assert all(b.start.hour == 0 for b in week.buckets)
    assert week.totals.requests == 7
    month = signed_in.get(overview_url(project, range="30d")).context["overview"]
    assert len(month.buckets) == 30
    assert month.totals.requests == 10


def test_a_custom_range_counts_only_the_calls_inside_it_to_the_minute(
    signed_in, project, api_key, now
):
    key = api_key[0]
    since = hour_of(now) - 30 * HOUR + timedelta(minutes=20)
    until = since + 5 * HOUR
    usage_write(
        [
            call(since - timedelta(seconds=1), key=key),  # same hour, before the range
            call(since, key=key),
            call(until - timedelta(seconds=1), key=key),
            call(until, key=key),  # `until` is exclusive
        ]
    )
    response = signed_in.get(
        overview_url(project),
        {"range": "custom", "since": f"{since:{MINUTE_INPUT}}", "until": f"{until:{MINUTE_INPUT}}"},
    )
    overview = response.context["overview"]
    assert overview.totals.requests == 2
    assert not overview.time_range.by_day
    assert overview.buckets[0].start == hour_of(since)
    assert overview.buckets[0].counts.requests == 1
    assert overview.buckets[-1].counts.requests == 1


def test_a_custom_range_without_an_end_runs_until_now(signed_in, project, api_key, now):
    key = api_key[0]
    usage_write([call(now - 4 * DAY, key=key), call(now - timedelta(minutes=1), key=key)])
    since = now - 5 * DAY
    overview = signed_in.get(overview_url(project, since=f"{since:{MINUTE_INPUT}}")).context[
        "overview"
    ]
    assert overview.time_range.by_day
    assert overview.totals.requests == 2


def test_a_preset_range_ignores_dates_left_from_a_custom_one(signed_in, project, api_key, now):
    key = api_key[0]
    usage_write([call(now - 3 * DAY, key=key)])
    response = signed_in.get(
        overview_url(project), {"range": "7d", "since": "2020-01-01T00:00", "until": ""}
    )
    assert response.context["overview"].totals.requests == 1
    assert response.context["overview"].time_range.name == "Last 7 days"


# -- Filters narrow ------------------------------------------------------------------------


def test_the_key_filter_narrows_to_that_key_and_the_client_tokens_it_minted(
    signed_in, project, world
):
    production = world["production"]
    overview = signed_in.get(
        overview_url(project, range="30d", key=production.pk, stack="kind")
    ).context["overview"]
    kinds = {s.id: n for s, n in overview.series_totals}
    assert kinds["api_key"] > 0
    assert kinds["client_token"] > 0
    assert kinds["personal_access_token"] == 0
    assert [c.api_key for c in overview.callers] == [production]


def test_the_token_type_filter_narrows_to_personal_access_tokens(signed_in, project, world):
    overview = signed_in.get(
        overview_url(project, range="30d", token_kind="personal_access_token", stack="kind")
    ).context["overview"]
    assert overview.totals.requests > 0
    assert [c.personal_token for c in overview.callers] == [world["pat"]]
    assert [s.id for s in overview.series] == ["personal_access_token"]


def test_each_filter_narrows_the_total(signed_in, project, world):
    everything = signed_in.get(overview_url(project, range="30d")).context["overview"]
    for params in (
        {"key": world["staging"].pk},
        {"token_kind": "client_token"},
        {"outcome": "server_error"},
        {"ip": "192.0.2.1"},
    ):
        narrowed = signed_in.get(overview_url(project, range="30d", **params)).context["overview"]
        assert 0 < narrowed.totals.requests < everything.totals.requests, params


def test_a_filter_that_matches_nothing_shows_empty_states(signed_in, project, api_key, now):
    usage_write([call(now, key=api_key[0])])
    response = signed_in.get(overview_url(project, ip="192.0.2.99"))
    html = response.content.decode()
    assert response.status_code == 200
    assert response.context["overview"].totals.requests == 0
    assert "No calls match these filters" in html
    assert "No calls with an address match." in html
    assert "No matching call named an agent." in html
    assert "Download CSV" not in html


def test_a_project_without_keys_says_how_to_start(signed_in, project):
    html = signed_in.get(overview_url(project)).content.decode()
    assert "No calls in this range" in html
    assert "No keys yet." in html
    assert reverse("apikeys:api_key_list", args=[project.slug]) in html


# -- Isolation -----------------------------------------------------------------------------


def test_another_projects_rows_never_appear_in_the_figures_or_the_export(signed_in, project, world):
    foreign_ids = set(
        UsageRecord.objects.filter(project=world["elsewhere"]).values_list("request_id", flat=True)
    )
    assert foreign_ids
    overview = signed_in.get(overview_url(project, range="30d")).context["overview"]
    own = UsageRecord.objects.filter(project=project, created_at__gte=overview.time_range.since)
    assert overview.totals.requests == own.count()
    assert world["foreign"] not in [c.api_key for c in overview.callers]
    assert world["foreign"] not in overview.quiet_keys

    exported = read_csv(signed_in.get(export_url(project, range="30d")))
    assert not foreign_ids & {row["request_id"] for row in exported}
    assert "Foreign" not in {row["key_name"] for row in exported}


def test_another_projects_key_in_the_key_filter_is_an_error_beside_the_field(
    signed_in, project, world
):
    foreign = world["foreign"]
    response = signed_in.get(overview_url(project, key=foreign.pk))
    html = response.content.decode()
    assert response.status_code == 400
    assert response.context["overview"] is None
    assert 'id="id_key_error"' in html
    assert "Choose one of this project’s keys from the list." in html
    assert "Foreign" not in html

    export = signed_in.get(export_url(project, key=foreign.pk))
    assert export.status_code == 400
    assert not isinstance(export, StreamingHttpResponse)
    assert 'id="id_key_error"' in export.content.decode()


def test_the_key_filter_offers_only_this_projects_keys_revoked_ones_included(
    signed_in, project, world
):
    html = signed_in.get(overview_url(project)).content.decode()
    select = re.search(r'<select name="key".*?</select>', html, re.S)[0]
    for name in ("production", "staging", "old"):
        assert f'value="{world[name].pk}"' in select
    assert "Old laptop (" in select and "revoked" in select
    assert f'value="{world["foreign"].pk}"' not in select


@pytest.mark.parametrize("name", ["usage:project_usage", "usage:project_usage_export"])
def test_another_projects_overview_and_export_are_404_for_non_members(
    client, make_user, make_project, make_key, name
):
    owner = make_user(email="owner@example.com")
    theirs = make_project(owner, name="Theirs")
    key, _ = make_key(theirs)
    usage_write([call(timezone.now(), key=key)])
    outsider = make_user(email="outsider@example.com")
    client.force_login(outsider)
    assert client.get(reverse(name, args=[theirs.slug])).status_code == 404
    assert client.get(reverse(name, args=[theirs.slug]), headers=HTMX).status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in(client, project):
    for name in ("usage:project_usage", "usage:project_usage_export"):
        response = client.get(reverse(name, args=[project.slug]))
        assert response.status_code == 302
        assert "/login/" in response["Location"]


# -- Bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"range": "forever"}, "range", "Choose a time range from the list."),
        ({"range": "custom"}, "since", "Enter when the range starts."),
        ({"range": "custom", "since": "yesterday"}, "since", "Enter a date and time in UTC"),
        (
            {"range": "custom", "since": "2025-06-03T12:00", "until": "2025-06-03T11:00"},
            "until",
            "“To” must be later than “From”.",
        ),
        (
            {"range": "custom", "since": "2025-01-01T00:00", "until": "2025-06-01T00:00"},
            "since",
            "Choose a range of at most 92 days.",
        ),
        # No "To": the range ends now, so a "From" still to come is wrong, and it is what
        # the error stands beside (it stood beside the empty "To" the person never typed).
        (
            {"range": "custom", "since": "2999-12-31T23:00"},
            "since",
            "With no “To” the range ends now: pick a “From” before now.",
        ),
        ({"key": "abc"}, "key", "Choose one of this project’s keys"),
        ({"key": "99999999999999999999999"}, "key", "Choose one of this project’s keys"),
        ({"key": "-1"}, "key", "Choose one of this project’s keys"),
        ({"token_kind": "root"}, "token_kind", "Choose a token type from the list."),
        ({"outcome": "meh"}, "outcome", "Choose an outcome from the list."),
        ({"ip": "203.0.113"}, "ip", "Enter an IPv4 or IPv6 address"),
        ({"ip": "x" * 5000}, "ip", "Enter an IPv4 or IPv6 address"),
        ({"ip": "10.0.0.1\x00"}, "ip", "Enter an IPv4 or IPv6 address"),
        ({"range": "custom", "since": "²025-06-03T12:00"}, "since", "Enter a date and time"),
        ({"range": "custom", "since": "9999-12-31T23:30"}, "since", "Enter a date from 2000"),
    ],
)
def test_bad_filters_are_errors_beside_their_field_never_a_500(
    signed_in, project, api_key, params, field, message
):
    response = signed_in.get(overview_url(project), params)
    html = unescape(response.content.decode())
    assert response.status_code == 400
    assert f'id="id_{field}_error"' in html
    assert message in html
    assert "Correct the filters above to see usage." in html

    fragment = signed_in.get(overview_url(project), params, headers=HTMX)
    assert fragment.status_code == 200  # htmx swaps it in
    assert f'id="id_{field}_error"' in fragment.content.decode()
    # The address bar keeps the last overview shown. (With hx-push-url on the page, no
    # header at all would have let htmx push the erroneous query.)
    assert fragment["HX-Push-Url"] == "false"

    export = signed_in.get(export_url(project), params)
    assert export.status_code == 400
    assert f'id="id_{field}_error"' in export.content.decode()


def test_ranges_at_the_end_of_the_last_year_cut_into_tiles_without_overflowing(signed_in, project):
    for since, until in (
        ("2999-12-31T23:30", "2999-12-31T23:59"),
        ("2999-12-31T00:00", "2999-12-31T23:59"),
        ("2999-10-01T00:00", "2999-12-31T23:59"),
    ):
        response = signed_in.get(overview_url(project, range="custom", since=since, until=until))
        assert response.status_code == 200, since
        assert response.context["overview"].totals.requests == 0


def test_an_unknown_stacking_falls_back_to_outcome(signed_in, project):
    response = signed_in.get(overview_url(project, stack="<script>"))
    assert response.status_code == 200
    assert response.context["overview"].stack == "outcome"
    assert "<script>" not in response.content.decode()


# -- The page ------------------------------------------------------------------------------


def test_htmx_gets_the_fragment_and_the_tidy_address_to_push(signed_in, project, world):
    response = signed_in.get(
        overview_url(project),
        {
            "range": "7d",
            "key": "",
            "token_kind": "client_token",
            "outcome": "",
            "ip": "",
            "since": "2020-01-01T00:00",
            "stack": "outcome",
        },
        headers=HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert html.lstrip().startswith('<div id="overview"')
    assert response["HX-Push-Url"] == overview_url(project, range="7d", token_kind="client_token")
    assert "HX-Request" in response["Vary"]


def test_the_filter_form_and_its_links_stay_on_the_usage_page(signed_in, project, world):
    url = reverse("usage:project_usage", args=[project.slug])
    html = signed_in.get(overview_url(project, range="7d", ip="198.51.100.23")).content.decode()
    form = re.search(r'<form id="overview-filters"[^>]*>', html)[0]
    assert f'action="{url}"' in form
    assert f'hx-get="{url}"' in form
    clear = re.search(r'<a class="clear-link" href="([^"]+)" hx-get="([^"]+)"', html)
    assert clear.groups() == (url, url)


def test_the_chart_is_an_image_with_a_title_a_description_and_a_table_of_its_figures(
    signed_in, project, world
):
    response = signed_in.get(overview_url(project, range="7d", stack="key"))
    html = response.content.decode()
    overview: ProjectOverview = response.context["overview"]
    assert '<svg class="chart"' in html and 'role="img"' in html
    assert '<title id="overview-chart-title">Calls per day, last 7 days</title>' in html
    desc = re.search(r'<desc id="overview-chart-desc">(.*?)</desc>', html)[1]
    assert f"{overview.totals.requests:,} calls" in unescape(desc)
    table = re.search(r'<table class="table figures-table">.*?</table>', html, re.S)[0]
    assert table.count('<th scope="row">') == len(overview.buckets) + 1  # and the total
    for series in overview.series:
        assert f"><bdi>{series.label}</bdi></th>" in unescape(table)
    assert 'style="' not in html  # the CSP allows no inline style


def test_the_stacking_links_keep_the_filters(signed_in, project, world):
    html = unescape(signed_in.get(overview_url(project, range="7d", outcome="ok")).content.decode())
    nav = re.search(r'<nav class="segmented".*?</nav>', html, re.S)[0]
    hrefs = re.findall(r'href="([^"]+)"', nav)
    assert len(hrefs) == 3
    for href in hrefs:
        query = parse_qs(urlsplit(href).query)
        assert query["range"] == ["7d"] and query["outcome"] == ["ok"]
    assert {parse_qs(urlsplit(h).query).get("stack", ["kind"])[0] for h in hrefs} == {
        "kind",
        "key",
        "outcome",
    }


def test_each_key_links_to_its_usage_page_and_quiet_keys_are_listed(
    signed_in, project, make_key, api_key, now
):
    busy = api_key[0]
    quiet, _ = make_key(project, "Quiet")
    usage_write([call(now, key=busy, status=401, error_code="invalid_api_key")])
    response = signed_in.get(overview_url(project))
    html = response.content.decode()
    for key in (busy, quiet):
        assert reverse("usage:api_key_usage", args=[project.slug, key.pk]) in html
    assert response.context["overview"].quiet_keys == [quiet]
    assert "never used" in html


def test_keys_that_ended_before_the_range_are_not_listed_as_quiet_in_it(
    signed_in, project, make_key, user, now
):
    """A project that rotates its keys keeps every revoked one (the audit trail names
    them), and the API keys page pages them. A key that could not be called at any time
    in the range is not "quiet" in it: listing each one made the overview of a project
    with a few thousand rotated keys megabytes long, for every filter click."""
    for n in range(30):
        rotated, _ = make_key(project, f"Rotated {n}")
        api_key_revoke(api_key=rotated, by=user)
    ApiKey.objects.filter(revoked_at__isnull=False).update(revoked_at=now - timedelta(days=3))
    expired, _ = make_key(project, "Expired long ago")
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=now - timedelta(days=2))
    ended_today, _ = make_key(project, "Revoked today")
    api_key_revoke(api_key=ended_today, by=user)
    working, _ = make_key(project, "Working")

    quiet = signed_in.get(overview_url(project)).context["overview"].quiet_keys
    assert [key.name for key in quiet] == ["Working", "Revoked today"]
    # Over a week, the keys that worked in it are there too, and still no others.
    quiet = signed_in.get(overview_url(project, range="7d")).context["overview"].quiet_keys
    assert len(quiet) == 30 + 3
    # A range before a key was made does not list it either.
    before = {"range": "custom", "since": f"{now - timedelta(days=40):%Y-%m-%dT%H:%M}"}
    before["until"] = f"{now - timedelta(days=35):%Y-%m-%dT%H:%M}"
    assert signed_in.get(overview_url(project, **before)).context["overview"].quiet_keys == []


def test_an_address_leads_to_the_keys_calls_from_it_when_one_key_is_chosen(
    signed_in, project, api_key, now
):
    key = api_key[0]
    usage_write([call(now, key=key, ip="198.51.100.23")])
    html = unescape(signed_in.get(overview_url(project, key=key.pk)).content.decode())
    link = re.search(r'<td data-label="Address" class="address"><a href="([^"]+)"', html)[1]
    parts = urlsplit(link)
    assert parts.path == reverse("usage:api_key_usage", args=[project.slug, key.pk])
    query = parse_qs(parts.query)
    assert query["ip"] == ["198.51.100.23"]
    # The key's page, so filtered, shows the same call.
    page = signed_in.get(link)
    assert page.status_code == 200
    assert [r.ip for r in page.context["page"].rows] == ["198.51.100.23"]


@pytest.mark.parametrize(
    ("token_kind", "caller", "counted"),
    [("", None, 3), ("api_key", "key", 1), ("client_token", "client_tokens", 2)],
)
def test_an_address_with_a_token_type_chosen_leads_to_that_types_calls_of_the_key(
    signed_in, project, api_key, now, token_kind, caller, counted
):
    """The key's server and its browser token called from one office address: with a token
    type chosen, the address counts that type's calls, and its link opens those in the
    key's log (its Caller), not every call of the key from there."""
    key = api_key[0]
    browser, _ = client_token_create(project=project, api_key=key, context={})
    at = now - timedelta(minutes=5)
    usage_write(
        [
            call(at, key=key, ip="198.51.100.23"),
            call(at + timedelta(seconds=5), client_token=browser, ip="198.51.100.23"),
            call(at + timedelta(seconds=9), client_token=browser, ip="198.51.100.23"),
        ]
    )
    page = signed_in.get(overview_url(project, key=key.pk, token_kind=token_kind))
    [row] = page.context["overview"].top_addresses
    assert row.requests == counted
    html = unescape(page.content.decode())
    link = re.search(r'<td data-label="Address" class="address"><a href="([^"]+)"', html)[1]
    assert parse_qs(urlsplit(link).query).get("caller", [None]) == [caller]
    rows = signed_in.get(link).context["page"].rows
    assert len(rows) == counted
    kinds = {"key": {None}, "client_tokens": {browser.pk}, None: {None, browser.pk}}
    assert {r.client_token_id for r in rows} == kinds[caller]


@pytest.mark.parametrize(
    ("token_kind", "caller", "counted"),
    [("", None, 3), ("api_key", "key", 1), ("client_token", "client_tokens", 2)],
)
def test_a_keys_row_leads_to_the_calls_of_the_token_type_it_counted(
    signed_in, project, api_key, now, token_kind, caller, counted
):
    """The table of keys counts, with a token type chosen, that type's calls of each key;
    the key's name opens its log at the same kind of call (its Caller)."""
    key = api_key[0]
    browser, _ = client_token_create(project=project, api_key=key, context={})
    at = now - timedelta(minutes=5)
    usage_write(
        [
            call(at, key=key, ip="198.51.100.23"),
            call(at + timedelta(seconds=5), client_token=browser, ip="198.51.100.24"),
            call(at + timedelta(seconds=9), client_token=browser, ip="198.51.100.25"),
        ]
    )
    page = signed_in.get(overview_url(project, token_kind=token_kind))
    [row] = page.context["overview"].callers
    assert row.counts.requests == counted
    html = unescape(page.content.decode())
    key_url = reverse("usage:api_key_usage", args=[project.slug, key.pk])
    link = re.search(rf'<td data-label="Key" class="who">\s*<a href="({key_url}[^"]*)"', html)[1]
    assert parse_qs(urlsplit(link).query).get("caller", [None]) == [caller]
    assert len(signed_in.get(link).context["page"].rows) == counted


def test_an_address_narrows_the_overview_when_no_key_is_chosen(signed_in, project, api_key, now):
    usage_write([call(now, key=api_key[0], ip="198.51.100.23"), call(now, key=api_key[0])])
    html = unescape(signed_in.get(overview_url(project)).content.decode())
    link = re.search(r'<td data-label="Address" class="address"><a href="([^"]+)"', html)[1]
    assert urlsplit(link).path == reverse("usage:project_usage", args=[project.slug])
    assert f'hx-get="{link}"' in html
    narrowed = signed_in.get(link).context["overview"]
    assert narrowed.totals.requests == 1


def test_personal_access_token_calls_are_shown_under_the_token_and_its_owner(
    signed_in, project, user, now
):
    pat, _ = personal_token_create(user=user, name="Deploy script")
    usage_write([call(now, pat=pat, project=project)])
    html = signed_in.get(overview_url(project)).content.decode()
    assert "Deploy script" in html
    assert pat.hint in html
    assert f"personal access token of <bdi>{user.get_short_name()}</bdi>" in html


def _reads(client: Any, url: str) -> Counter[str]:
    """How many queries of the page read each usage table."""
    tables = (
        "apikeys_usagerecord",
        "usage_projecthour",
        "usage_projectday",
        "usage_projectaddresshour",
        "usage_projectaddressday",
    )
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return Counter(t for q in queries for t in tables if f'"{t}"' in q["sql"])


def test_a_range_of_whole_days_is_read_from_the_daily_roll_ups_alone(signed_in, project, world):
    for preset in ("30d", "7d"):
        reads = _reads(signed_in, overview_url(project, range=preset, stack="key"))
        # The chart and callers, their last calls, the agents; the addresses. Never the log.
        assert reads == Counter({"usage_projectday": 3, "usage_projectaddressday": 1})


def test_a_range_of_whole_hours_is_read_from_the_hourly_roll_ups_alone(
    signed_in, project, world, now
):
    # 18 whole hours: never a whole UTC day, which the daily roll-ups would answer. (The
    # 24h preset was used here; from 23:00 UTC it holds a whole day, and the test failed.)
    since = (now - timedelta(hours=20)).replace(minute=0)
    until = (now - timedelta(hours=2)).replace(minute=0)
    url = overview_url(
        project, range="custom", since=f"{since:%Y-%m-%dT%H:%M}", until=f"{until:%Y-%m-%dT%H:%M}"
    )
    reads = _reads(signed_in, url)
    assert reads == Counter({"usage_projecthour": 3, "usage_projectaddresshour": 1})


def test_a_range_to_the_minute_reads_the_log_for_its_minutes_only(signed_in, project, world, now):
    since = (now - timedelta(days=3)).replace(minute=20)
    until = (now - timedelta(days=1)).replace(minute=40)
    url = overview_url(
        project, range="custom", since=f"{since:%Y-%m-%dT%H:%M}", until=f"{until:%Y-%m-%dT%H:%M}"
    )
    reads = _reads(signed_in, url)
    # Whole days, whole hours and minutes, for the calls (by day: more than two days),
    # the last calls, the agents and the addresses: one query each.
    assert reads == Counter(
        {
            "usage_projectday": 3,
            "usage_projecthour": 3,
            "usage_projectaddressday": 1,
            "usage_projectaddresshour": 1,
            "apikeys_usagerecord": 4,
        }
    )


def test_an_address_filter_reads_the_log_which_alone_knows_addresses_per_call(
    signed_in, project, world
):
    reads = _reads(signed_in, overview_url(project, range="30d", ip="203.0.113.7"))
    assert reads == Counter({"apikeys_usagerecord": 4})


# -- The export ----------------------------------------------------------------------------


def test_the_export_is_a_streamed_csv_attachment_named_for_the_project_and_day(
    signed_in, project, api_key, now
):
    usage_write([call(now, key=api_key[0])])
    response = signed_in.get(export_url(project))
    assert isinstance(response, StreamingHttpResponse)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="reminix-usage-{project.slug}-{now:%Y-%m-%d}.csv"'
    )
    assert len(read_csv(response)) == 1


def test_each_exported_row_says_what_the_call_was(signed_in, project, user, api_key, now):
    key = api_key[0]
    minted, _ = client_token_create(project=project, api_key=key, context={})
    pat, _ = personal_token_create(user=user, name="Laptop CLI")
    at = now.replace(microsecond=123456) - timedelta(minutes=5)
    by_token = call(
        at,
        client_token=minted,
        status=403,
        error_code="insufficient_permissions",
        ip="2001:db8::1",
        agent="support-bot",
        user_agent='Mozilla/5.0, "quoted"',
        latency_us=12_345,
    )
    by_pat = call(at - timedelta(minutes=1), pat=pat, project=project, agent="", ip=None)
    usage_write([by_token, by_pat])

    first, second = read_csv(signed_in.get(export_url(project)))
    assert first == {
        "time_utc": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "key_name": key.name,
        "key_hint": key.hint,
        "token_type": "client_token",
        "client_token_id": minted.public_id,
        "method": "POST",
        "path": "/v1/agents/support-bot/invoke",
        "agent": "support-bot",
        "status": "403",
        "error_code": "insufficient_permissions",
        "outcome": "auth_failure",
        "latency_ms": "12.345",
        "ip_address": "2001:db8::1",
        "user_agent": 'Mozilla/5.0, "quoted"',
        "request_id": by_token.request_id,
    }
    assert second["token_type"] == "personal_access_token"
    assert (second["key_name"], second["key_hint"]) == ("Laptop CLI", pat.hint)
    assert second["ip_address"] == second["agent"] == second["client_token_id"] == ""


def test_exported_cells_that_a_spreadsheet_would_run_as_formulas_are_neutralised(
    signed_in, project, make_key, now
):
    key, _ = make_key(project, '=HYPERLINK("http://evil.example")')
    agents = ["-agent", "+agent", "@agent", "ok"]
    usage_write(
        [
            call(now - timedelta(seconds=i), key=key, agent=agent, user_agent=ua)
            for i, (agent, ua) in enumerate(
                zip(agents, ["=1+2", "+cmd", "-2+3", "@SUM(A1)"], strict=True)
            )
        ]
    )
    rows = read_csv(signed_in.get(export_url(project)))
    assert [r["user_agent"] for r in rows] == ["'=1+2", "'+cmd", "'-2+3", "'@SUM(A1)"]
    assert [r["agent"] for r in rows] == ["'-agent", "'+agent", "'@agent", "ok"]
    assert {r["key_name"] for r in rows} == {'\'=HYPERLINK("http://evil.example")'}
    assert {r["status"] for r in rows} == {"200"}


def test_the_export_holds_no_token_and_no_token_hash(signed_in, project, make_key, now):
    key, secret = make_key(project, "Production")
    usage_write([call(now, key=key)])
    text = b"".join(signed_in.get(export_url(project)).streaming_content).decode()
    assert secret not in text
    assert secret[len("reminix_sk_") :] not in text
    assert key.token_hash not in text
    assert key.hint in text


def test_the_export_is_filtered_and_newest_first(signed_in, project, make_key, now):
    a, _ = make_key(project, "A")
    b, _ = make_key(project, "B")
    usage_write(
        [call(now - timedelta(minutes=i), key=a if i % 2 else b) for i in range(10)]
        + [call(now - timedelta(minutes=3), key=a, status=500, error_code="internal_error")]
    )
    rows = read_csv(signed_in.get(export_url(project, key=a.pk, outcome="ok")))
    assert [r["request_id"] for r in rows] == list(
        UsageRecord.objects.filter(api_key=a, outcome="ok")
        .order_by("-created_at", "-id")
        .values_list("request_id", flat=True)
    )
    assert len(rows) == 5


def test_signed_in_pages_and_exports_are_not_cached(signed_in, project: Project, api_key):
    assert "no-store" in signed_in.get(overview_url(project))["Cache-Control"]
    assert "no-store" in signed_in.get(export_url(project))["Cache-Control"]


def test_entries_the_service_had_to_drop_are_shown_as_a_warning_for_their_period(
    signed_in, project, api_key, now
):
    """Issue 9: a database away for longer than the buffers last drops usage entries; the
    answered calls are then missing from every figure, and the overview says so."""
    from usage.models import UsageDrop
    from usage.writer import usage_drops_record

    usage_write([call(now, key=api_key[0])])
    page = signed_in.get(overview_url(project))
    assert page.context["overview"].dropped == 0
    assert b"could not be written" not in page.content

    usage_drops_record("usage", "buffer full", 3)  # as the write-behind reports them
    usage_drops_record("executions", "buffer full", 5)  # not usage entries: not counted
    UsageDrop.objects.create(
        hour=hour_of(now - 3 * DAY), channel="usage", reason="buffer full", count=40
    )

    page = signed_in.get(overview_url(project))
    assert page.context["overview"].dropped == 3
    text = unescape(page.content.decode())
    assert "3 usage entries could not be written in this period" in text
    # The week's range reaches the older drop too; the figures themselves are unchanged.
    week = signed_in.get(overview_url(project, range="7d")).context["overview"]
    assert week.dropped == 43
    assert week.totals.requests == 1


def test_refused_calls_show_in_the_chart_without_choosing_a_split(signed_in, project, world):
    """Stacked by outcome unless asked otherwise: a refusal is its own colour at once."""
    overview = signed_in.get(overview_url(project, range="30d")).context["overview"]
    assert overview.stack == "outcome"
    assert {s.id for s in overview.series} >= {"ok", "auth_failure"}


@pytest.mark.parametrize("stack", ["%00", "kind%00", "%ED%A0%80", "x" * 300])
def test_an_unknown_stack_falls_back_to_the_default_even_with_a_nul(signed_in, project, stack):
    """`stack` is hidden: an error on it would show beside no field. The page and the
    export take the default split for whatever they do not know."""
    page = signed_in.get(overview_url(project, range="7d", stack=stack))
    assert page.status_code == 200
    assert "Correct the filters" not in page.content.decode()
    export = signed_in.get(export_url(project, range="7d", stack=stack))
    assert export.status_code == 200
    assert isinstance(export, StreamingHttpResponse)


def test_the_export_is_labelled_as_on_the_calls_and_audit_pages(signed_in, project, api_key, now):
    """It read "Export CSV" here and "Download CSV" on Calls and the audit log."""
    usage_write([call(now, key=api_key[0])])
    html = signed_in.get(overview_url(project)).content.decode()
    assert "Download CSV" in html and "Export CSV" not in html


def test_the_overviews_key_filter_reads_any_key_as_its_other_filters_and_the_log_do(
    signed_in, project
):
    """Its selects read "All keys", "Any token type", "Any outcome", and the call log's
    key filter, a click away, "Any key"."""
    html = signed_in.get(reverse("usage:project_usage", args=[project.slug])).content.decode()
    key_select = re.search(r'<select name="key".*?</select>', html, re.S)
    assert key_select and '<option value="" selected>Any key</option>' in key_select[0]
    log = signed_in.get(reverse("usage:project_calls", args=[project.slug])).content.decode()
    assert '<option value="" selected>Any key</option>' in log


def test_the_by_key_table_lists_the_busiest_keys_and_counts_the_rest(
    signed_in, project, make_key, user, now, monkeypatch
):
    """A project that rotates its keys keeps thousands of ended ones, and each that a
    forgotten server still tries has calls in the range: the table listed every one (1,700
    rows, 1.3 MB and 1.4 s for a day of a big tenant's usage; 4.5 s for 30 days). The
    busiest are listed, and the others counted."""
    monkeypatch.setattr(overview, "CALLERS_SHOWN", 3)
    keys = [make_key(project, f"Key {n}")[0] for n in range(5)]
    for key in keys[:2]:
        api_key_revoke(api_key=key, by=user)
    # Key n made n + 1 calls: Key 4 is the busiest.
    usage_write(
        [
            call(now - timedelta(minutes=m), key=key)
            for n, key in enumerate(keys)
            for m in range(n + 1)
        ]
    )

    response = signed_in.get(overview_url(project))
    shown = response.context["overview"]
    assert [caller.api_key.name for caller in shown.callers] == ["Key 4", "Key 3", "Key 2"]
    assert shown.more_callers == 2
    assert shown.totals.requests == 1 + 2 + 3 + 4 + 5
    # Keys with calls are not quiet, listed or not.
    assert shown.quiet_keys == []
    html = unescape(response.content.decode())
    assert "and 2 more keys and tokens with fewer calls" in html
    assert reverse("usage:api_key_usage", args=[project.slug, keys[0].pk]) not in html
    # Filtered by one of those left out, it is there.
    filtered = signed_in.get(overview_url(project, key=keys[0].pk)).context["overview"]
    assert [caller.api_key for caller in filtered.callers] == [keys[0]]
    assert filtered.more_callers == 0


def test_quiet_keys_after_a_mass_rotation_are_listed_up_to_the_cap_and_counted(
    signed_in, project, make_key, user, now, monkeypatch
):
    """Each key revoked in the range could be called in it: after a project revoked its
    thousands of keys at once, each was listed as quiet, in every range that day."""
    monkeypatch.setattr(overview, "CALLERS_SHOWN", 3)
    for n in range(5):
        rotated, _ = make_key(project, f"Rotated {n}")
        api_key_revoke(api_key=rotated, by=user)

    response = signed_in.get(overview_url(project))
    shown = response.context["overview"]
    assert [key.name for key in shown.quiet_keys] == ["Rotated 4", "Rotated 3", "Rotated 2"]
    assert shown.more_quiet_keys == 2
    assert "and 2 more keys without calls" in unescape(response.content.decode())


def test_a_key_in_the_chart_is_named_when_busier_tokens_fill_the_table(
    signed_in, project, make_key, user, now, monkeypatch
):
    """The chart by key names the busiest keys, whatever the table lists: a key below the
    table's cap (personal access tokens busier than every key) was drawn as 'Key 12'."""
    monkeypatch.setattr(overview, "CALLERS_SHOWN", 1)
    key, _ = make_key(project, "Production")
    pat, _ = personal_token_create(user=user, name="Deploy script")
    usage_write(
        [call(now - timedelta(minutes=m), pat=pat, project=project) for m in range(3)]
        + [call(now, key=key)]
    )
    shown = signed_in.get(overview_url(project, stack="key")).context["overview"]
    assert [caller.personal_token for caller in shown.callers] == [pat]
    assert [series.label for series in shown.series] == ["Production", "Personal access tokens"]
