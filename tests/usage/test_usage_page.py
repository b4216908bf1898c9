"""The per-key usage page: the log newest first in keyset pages, its filters, the hourly
charts and totals from the roll-ups, revoked-key calls standing out, and isolation."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Project, User
from apikeys.models import ApiKey
from apikeys.services import client_token_create
from tests.conftest import HTMX, usage_call
from usage.charts import compact, nice_ceiling
from usage.key_usage import PAGE_SIZE, Cursor
from usage.models import Outcome, UsageRecord
from usage.writer import UsageEntry, usage_write

TOKEN_SHAPED = re.compile(r"reminix_(?:sk|ct|pat)_[0-9A-Za-z]{20,}")
INVOKE = "/v1/agents/my-agent/invoke"
HOUR = timedelta(hours=1)
ERRORS = (Outcome.CLIENT_ERROR, Outcome.AUTH_FAILURE, Outcome.SERVER_ERROR)


def usage_url(key: ApiKey, **params: str) -> str:
    url = reverse("usage:api_key_usage", args=[key.project.slug, key.pk])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


def call(key: ApiKey, at: datetime, **fields: Any) -> UsageEntry:
    return usage_call(at, key=key, **fields)


def rows_of(response) -> list[str]:
    return [row.request_id for row in response.context["page"].rows]


def link(response, rel: str) -> str | None:
    """The href of the pager link with this rel, checking htmx would fetch the same."""
    html = response.content.decode()
    match = re.search(rf'<a [^>]*href="([^"]+)" hx-get="([^"]+)" rel="{rel}"', html)
    if match is None:
        return None
    href, hx_get = (m.replace("&amp;", "&") for m in match.groups())
    assert href == hx_get
    return href


def newest_first(key: ApiKey, **filters: object) -> list[str]:
    return list(
        UsageRecord.objects.filter(api_key=key, **filters)
        .order_by("-created_at", "-id")
        .values_list("request_id", flat=True)
    )


@pytest.fixture
def now() -> datetime:
    return timezone.now()


# -- The log, page by page ---------------------------------------------------------------


def test_the_older_links_walk_every_call_exactly_once_newest_first(signed_in, key, now):
    # 130 calls, some sharing a timestamp, so the id must break ties between pages.
    moments = [now - timedelta(minutes=i // 3) for i in range(130)]
    usage_write([call(key, at) for at in moments])

    seen, url, pages = [], usage_url(key), 0
    while url:
        response = signed_in.get(url)
        assert response.status_code == 200
        seen += rows_of(response)
        pages += 1
        url = link(response, "next")

    assert pages == 3
    assert seen == newest_first(key)
    assert len(seen) == len(set(seen)) == 130


def test_the_newer_links_walk_back_to_the_newest_page(signed_in, key, now):
    usage_write([call(key, now - timedelta(seconds=i)) for i in range(120)])
    first = signed_in.get(usage_url(key))
    second = signed_in.get(link(first, "next"))
    third = signed_in.get(link(second, "next"))
    assert link(third, "next") is None
    assert len(rows_of(third)) == 20

    back = signed_in.get(link(third, "prev"))
    assert rows_of(back) == rows_of(second)
    # Fewer than a page is newer than the second page: "Newer" shows the full newest page.
    top = signed_in.get(link(back, "prev"))
    assert rows_of(top) == rows_of(first)
    assert link(top, "prev") is None
    assert top.context["page"].is_newest


def test_paging_reads_one_page_from_the_log_with_no_offset_and_no_count(signed_in, key, now):
    usage_write([call(key, now - timedelta(seconds=i)) for i in range(120)])
    first = signed_in.get(usage_url(key))
    with CaptureQueriesContext(connection) as queries:
        signed_in.get(link(first, "next"))
    log_reads = [q["sql"] for q in queries if "apikeys_usagerecord" in q["sql"]]
    assert len(log_reads) == 1
    assert "OFFSET" not in log_reads[0].upper()
    assert f"LIMIT {PAGE_SIZE + 1}" in log_reads[0].upper()
    assert not any("COUNT(" in sql.upper() for sql in log_reads)


def test_each_row_shows_what_the_call_was_and_no_key(signed_in, key, now):
    usage_write(
        [
            call(
                key,
                now,
                method="GET",
                path="/v1/agents",
                status=403,
                error_code="insufficient_permissions",
                ip="2001:db8::1",
                user_agent="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/140",
                latency_us=12_345,
            )
        ]
    )
    record = UsageRecord.objects.get(api_key=key)
    # An error code may break after its underscores (<wbr>): what is read is the text.
    html = signed_in.get(usage_url(key)).content.decode().replace("<wbr>", "")
    for shown in [
        record.created_at.strftime("%H:%M:%S"),
        "GET",
        "/v1/agents",
        "403",
        "insufficient_permissions",
        "12.3",
        "2001:db8::1",
        "Mozilla/5.0 (X11; Linux x86_64) App…",
        record.request_id,
    ]:
        assert shown in html
    # Whole under the cut, in a disclosure that keyboard and touch open too (not a title);
    # isolated, as every client's text (test_text_direction_isolated.py).
    whole = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/140"
    assert f'<span class="reveal-whole"><bdi>{whole}</bdi></span>' in html


def test_calls_by_a_client_token_the_key_minted_say_so_and_drill_down(signed_in, key, now):
    minted, _ = client_token_create(project=key.project, api_key=key, context={})
    direct = call(key, now - timedelta(seconds=1))
    by_token = replace(call(key, now), token_kind="client_token", client_token_id=minted.pk)
    usage_write([direct, by_token])
    html = signed_in.get(usage_url(key)).content.decode()
    assert html.count(f"?client_token={minted.public_id}") == 2  # href and hx-get of one row
    drilled = signed_in.get(usage_url(key), {"client_token": minted.public_id}).content.decode()
    assert by_token.request_id in drilled
    assert direct.request_id not in drilled
    assert f'value="{minted.public_id}"' in drilled


def test_a_malformed_client_token_filter_is_an_error_beside_its_field(signed_in, key):
    response = signed_in.get(usage_url(key), {"client_token": "reminix_ct_notanid"})
    assert response.status_code == 400
    assert 'id="id_client_token_error"' in response.content.decode()


def test_a_key_without_calls_says_so(signed_in, key):
    response = signed_in.get(usage_url(key))
    assert response.status_code == 200
    assert "No calls yet." in response.content.decode()


# -- Filters -----------------------------------------------------------------------------


@pytest.fixture
def mixed(key: ApiKey, now: datetime) -> list[UsageEntry]:
    """Every outcome, two addresses, over two days."""
    entries = []
    for i in range(48):
        at = now - timedelta(hours=i, minutes=7)
        entries += [
            call(key, at, ip="203.0.113.7"),
            call(key, at, status=400, error_code="invalid_request", ip="198.51.100.2"),
            call(key, at, status=404, error_code="agent_not_found", ip="203.0.113.7"),
        ]
        if i % 4 == 0:
            entries.append(call(key, at, status=401, error_code="expired_api_key", ip="192.0.2.66"))
            entries.append(call(key, at, status=403, error_code="insufficient_permissions"))
        if i % 12 == 0:
            entries.append(call(key, at, status=500, error_code="internal_error", ip="192.0.2.66"))
    usage_write(entries)
    return entries


def walk(client: Client, url: str) -> list[str]:
    """Every row the pager reaches from `url`."""
    seen = []
    while url:
        response = client.get(url)
        assert response.status_code == 200
        seen += rows_of(response)
        url = link(response, "next")
    return seen


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"outcome": "ok"}, {"outcome": Outcome.OK}),
        ({"outcome": "client_error"}, {"outcome": Outcome.CLIENT_ERROR}),
        ({"outcome": "auth_failure"}, {"outcome": Outcome.AUTH_FAILURE}),
        ({"outcome": "revoked_key"}, {"outcome": Outcome.REVOKED_KEY}),
        ({"outcome": "server_error"}, {"outcome": Outcome.SERVER_ERROR}),
        ({"status": "404"}, {"status": 404}),
        ({"status": "401"}, {"status": 401}),
        ({"status": "200"}, {"status": 200}),
        ({"ip": "198.51.100.2"}, {"ip": "198.51.100.2"}),
        ({"ip": "192.0.2.66", "status": "500"}, {"ip": "192.0.2.66", "status": 500}),
        ({"outcome": "client_error", "ip": "203.0.113.7"}, {"status": 404}),
    ],
)
def test_each_filter_narrows_the_log_to_the_calls_that_match(
    signed_in, key, mixed, params, expected
):
    shown = walk(signed_in, usage_url(key, **params))
    assert shown == newest_first(key, **expected)
    assert 0 < len(shown) < len(mixed)


def test_the_time_range_includes_from_and_excludes_to(signed_in, key, mixed, now):
    since = (now - timedelta(hours=10)).replace(second=0, microsecond=0)
    until = (now - timedelta(hours=3)).replace(second=0, microsecond=0)
    fmt = "%Y-%m-%dT%H:%M"
    shown = walk(signed_in, usage_url(key, since=since.strftime(fmt), until=until.strftime(fmt)))
    assert shown == newest_first(key, created_at__gte=since, created_at__lt=until)
    assert 0 < len(shown) < len(mixed)


def test_pager_links_keep_the_filters(signed_in, key, mixed):
    first = signed_in.get(usage_url(key, outcome="client_error"))
    older = link(first, "next")
    assert parse_qs(urlsplit(older).query)["outcome"] == ["client_error"]
    assert "before" in parse_qs(urlsplit(older).query)


def test_a_filter_the_rollups_rule_out_answers_without_reading_the_log(signed_in, key, mixed):
    with CaptureQueriesContext(connection) as queries:
        response = signed_in.get(usage_url(key, ip="192.0.2.200"))
    assert "No calls match these filters." in response.content.decode()
    assert not [q for q in queries if "apikeys_usagerecord" in q["sql"]]


def export_link(response) -> str | None:
    match = re.search(r'href="([^"]*export\.csv[^"]*)"', response.content.decode())
    return match.group(1).replace("&amp;", "&") if match else None


@pytest.mark.parametrize(
    "params",
    [{}, {"ip": "192.0.2.66"}, {"outcome": "revoked_key", "ip": "192.0.2.66"}],
)
def test_the_filtered_log_downloads_as_csv_with_exactly_its_calls(
    signed_in, key, mixed, now, make_key, params
):
    """What an alert's "See the calls" opens, an engineer can keep: the calls the filtered
    log lists on all its pages, and no other key's."""
    other, _ = make_key(key.project, name="Other")
    usage_write([call(other, now - timedelta(minutes=3), ip="192.0.2.66")])
    params = {**params, "since": f"{now - timedelta(hours=30):%Y-%m-%dT%H:%M}"}
    url = usage_url(key, **params)
    listed = walk(signed_in, url)
    download = export_link(signed_in.get(url))
    assert download is not None
    response = signed_in.get(download)
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    exported = [row["request_id"] for row in csv.DictReader(io.StringIO(body.lstrip("\ufeff")))]
    assert exported == listed and listed


def test_a_revoked_keys_log_downloads_too(signed_in, key, mixed, user):
    key.revoke(by=user)
    url = usage_url(key, outcome="revoked_key")
    response = signed_in.get(export_link(signed_in.get(url)))
    body = b"".join(response.streaming_content).decode()
    exported = [row["request_id"] for row in csv.DictReader(io.StringIO(body.lstrip("\ufeff")))]
    assert exported == walk(signed_in, url) and exported


def test_a_filter_that_matches_nothing_offers_to_clear_it(signed_in, key, mixed):
    html = signed_in.get(usage_url(key, status="418")).content.decode()
    assert "No calls match these filters." in html
    assert "Clear the filters" in html


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"status": "abc"}, "status", "Enter an HTTP status code, like 401."),
        ({"status": "99999"}, "status", "Enter an HTTP status code from 100 to 599."),
        ({"ip": "not-an-ip"}, "ip", "Enter an IPv4 or IPv6 address"),
        ({"ip": "999.1.1.1"}, "ip", "Enter an IPv4 or IPv6 address"),
        ({"outcome": "leaked"}, "outcome", "Choose an outcome from the list."),
        ({"since": "yesterday"}, "since", "Enter a date and time in UTC"),
        ({"since": "99999-01-01T00:00"}, "since", "Enter a date and time in UTC"),
        (
            {"since": "2025-06-03T14:30", "until": "2025-06-03T14:00"},
            "until",
            "“To” must be later than “From”.",
        ),
    ],
)
def test_bad_filter_input_is_answered_with_an_error_beside_its_field(
    signed_in, key, params, field, message
):
    response = signed_in.get(usage_url(key, **params))
    assert response.status_code == 400
    html = response.content.decode()
    group = re.search(rf'<div class="field field-{field}">(.*?)</div>', html, re.S)
    assert group is not None
    assert message in group.group(1)
    assert 'aria-invalid="true"' in group.group(1)
    assert "Correct the filters above to see calls." in html


@pytest.mark.parametrize(
    "params",
    [
        {"before": "garbage"},
        {"before": "20250603T140211.123456Z_x"},
        {"before": "20250603T140211.123456Z_99999999999999999999"},
        {"after": "20250603T140211.123456Z_0"},
        {"before": "20250603T140211.123456Z_1", "after": "20250603T140211.123456Z_2"},
        {"before": "%00"},
        {"status": "%00", "ip": "%00", "since": "%00"},
    ],
)
def test_a_damaged_page_link_is_a_400_page_not_a_500(signed_in, key, params):
    response = signed_in.get(usage_url(key, **params))
    assert response.status_code == 400
    assert "<h1>" in response.content.decode()


def test_with_htmx_bad_input_swaps_in_the_errors_with_a_200(signed_in, key):
    response = signed_in.get(usage_url(key, status="abc"), headers=HTMX)
    assert response.status_code == 200  # htmx swaps 2xx only
    html = response.content.decode()
    assert 'id="usage-filters"' in html and 'hx-swap-oob="true"' in html
    assert "Enter an HTTP status code, like 401." in html


# -- htmx --------------------------------------------------------------------------------


def test_htmx_gets_only_the_log_and_the_filter_form(signed_in, key, now):
    usage_write([call(key, now - timedelta(seconds=i)) for i in range(60)])
    response = signed_in.get(usage_url(key, outcome="ok"), headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    # Not the page around them: no document, no stats or charts (the Download CSV
    # button's arrow is an svg of the filter form's own).
    assert "<html" not in html and 'class="chart-frame"' not in html
    assert 'id="calls-title"' not in html
    assert html.count('id="usage-log"') == 1
    assert '<form id="usage-filters"' in html and 'hx-swap-oob="true"' in html
    assert "HX-Request" in response["Vary"]
    assert len(rows_of(response)) == PAGE_SIZE


def test_htmx_pushes_the_tidy_address_of_what_was_asked(signed_in, key, now):
    usage_write([call(key, now - timedelta(seconds=i)) for i in range(60)])
    response = signed_in.get(
        usage_url(key, outcome="", status="200", ip="", since="", until=""), headers=HTMX
    )
    assert response["HX-Push-Url"] == usage_url(key, status="200")
    older = signed_in.get(link(response, "next"), headers=HTMX)
    query = parse_qs(urlsplit(older["HX-Push-Url"]).query)
    assert query["status"] == ["200"] and len(query["before"]) == 1


def test_the_whole_page_wires_htmx_to_the_log_and_keeps_real_links(signed_in, key, now):
    usage_write([call(key, now - timedelta(seconds=i)) for i in range(60)])
    html = signed_in.get(usage_url(key)).content.decode()
    assert 'hx-target="#usage-log"' in html and 'hx-push-url="true"' in html
    assert re.search(r'<form id="usage-filters"[^>]* method="get" action="[^"]+" hx-get=', html)
    assert link(signed_in.get(usage_url(key)), "next")  # href and hx-get, checked in link()


def test_an_htmx_history_restore_gets_the_whole_page(signed_in, key):
    response = signed_in.get(usage_url(key), headers={**HTMX, "HX-History-Restore-Request": "true"})
    assert "<html" in response.content.decode()


# -- Charts and totals -------------------------------------------------------------------


@pytest.fixture
def eight_days(key: ApiKey, now: datetime) -> None:
    """Calls every few hours for eight days, of every kind, from a few addresses."""
    entries = []
    outcomes = [
        (200, ""),
        (200, ""),
        (400, "invalid_request"),
        (401, "expired_api_key"),
        (403, "insufficient_permissions"),
        (500, "internal_error"),
    ]
    for i in range(0, 8 * 24, 5):
        for j in range(i % 7 + 1):
            status, code = outcomes[(i + j) % len(outcomes)]
            ip = f"198.51.100.{(i // 24) % 4}"
            entries.append(
                call(
                    key,
                    now - timedelta(hours=i, minutes=j * 3),
                    status=status,
                    error_code=code,
                    ip=ip,
                    latency_us=1000 + 250 * j,
                )
            )
    usage_write(entries)


def test_chart_and_totals_equal_counts_over_the_raw_log_for_each_window(signed_in, key, eight_days):
    response = signed_in.get(usage_url(key))
    windows = response.context["summary"].windows
    assert [w.name for w in windows] == ["Last 24 hours", "Last 7 days"]
    assert [len(w.hours) for w in windows] == [24, 168]

    for window in windows:
        raw = UsageRecord.objects.filter(
            api_key=key, created_at__gte=window.start, created_at__lt=window.end
        )
        assert window.end - window.start == len(window.hours) * HOUR
        per_hour = Counter(r.created_at.replace(minute=0, second=0, microsecond=0) for r in raw)
        for hour in window.hours:
            assert hour.requests == per_hour[hour.start]
            in_hour = Counter(
                r.outcome for r in raw if hour.start <= r.created_at < hour.start + HOUR
            )
            assert hour.ok == in_hour[Outcome.OK]
            assert hour.revoked == in_hour[Outcome.REVOKED_KEY]
            assert hour.errors == sum(in_hour[o] for o in ERRORS)
        totals = window.totals
        assert totals.requests == raw.count() > 0
        assert totals.ok == raw.filter(outcome=Outcome.OK).count()
        assert totals.revoked == raw.filter(outcome=Outcome.REVOKED_KEY).count()
        failed = raw.exclude(outcome=Outcome.OK).count()
        assert totals.error_rate == pytest.approx(failed / raw.count())
        assert totals.average_latency_ms == pytest.approx(
            sum(r.latency_us for r in raw) / raw.count() / 1000
        )
        assert window.distinct_ips == raw.values("ip").distinct().count()
        assert sum(d.requests for d in window.days) == totals.requests

    html = response.content.decode()
    day, week = windows
    assert f"<dt>Calls</dt><dd>{day.totals.requests:,}</dd>" in html
    assert f"<dt>Calls</dt><dd>{week.totals.requests:,}</dd>" in html
    assert f"{week.totals.requests:,} calls from" in html  # the chart's <desc>


def test_addresses_show_first_and_last_seen_from_the_rollup(signed_in, key, eight_days, now):
    response = signed_in.get(usage_url(key))
    summary = response.context["summary"]
    week_start = summary.windows[1].start
    raw = UsageRecord.objects.filter(api_key=key)
    recent = set(raw.filter(created_at__gte=week_start).values_list("ip", flat=True))
    assert {a.ip for a in summary.addresses} == recent
    html = response.content.decode()
    for address in summary.addresses:
        calls = raw.filter(ip=address.ip)
        first = calls.order_by("created_at").first().created_at
        last = calls.order_by("-created_at").first().created_at
        assert (address.first_seen, address.last_seen) == (first, last)
        assert f"{first:%-d %b %Y, %H:%M}" in html and f"{last:%-d %b %Y, %H:%M}" in html
        assert address.requests == calls.count()


def test_charts_are_svg_with_words_for_screen_readers_and_no_inline_style(
    signed_in, key, eight_days
):
    html = signed_in.get(usage_url(key)).content.decode()
    # The day's hours, the week's days, and the week's hours on demand.
    assert html.count('<svg class="chart"') == 3
    assert 'role="img" aria-labelledby="chart-0-title chart-0-desc"' in html
    assert '<title id="chart-1-title">Calls per day, last 7 days</title>' in html
    assert '<title id="chart-1-hours-title">Calls per hour, last 7 days</title>' in html
    assert '<desc id="chart-1-desc">' in html
    assert "Figures by hour" in html and "Figures by day" in html
    assert "style=" not in html
    assert "<script>" not in html  # only our nonced scripts, from files


def test_a_key_with_no_calls_draws_empty_charts(signed_in, key):
    html = signed_in.get(usage_url(key)).content.decode()
    assert html.count("No calls in this window") == 3
    assert "No calls in the last 7 days." in html


@pytest.mark.parametrize(
    ("value", "ceiling"), [(0, 2), (1, 2), (3, 4), (7, 8), (9, 10), (11, 20), (61, 80), (999, 1000)]
)
def test_the_chart_scale_tops_out_at_a_round_number_with_a_whole_half(value, ceiling):
    assert nice_ceiling(value) == ceiling
    assert nice_ceiling(value) % 2 == 0


def test_tick_labels_stay_short():
    assert [compact(n) for n in (0, 950, 1000, 1250, 12_000, 2_500_000)] == [
        "0",
        "950",
        "1k",
        "1.2k",
        "12k",
        "2.5M",
    ]


def test_a_cursor_reads_back_as_itself():
    cursor = Cursor(datetime(2025, 6, 3, 14, 2, 11, 123456, tzinfo=UTC), 42)
    assert str(cursor) == "20250603T140211.123456Z_42"
    assert Cursor.parse(str(cursor)) == cursor


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1, 1, 1, 0, 30, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime.max.replace(tzinfo=UTC),
    ],
)
def test_a_cursor_at_the_calendars_edges_reads_back_as_itself(moment):
    """A call's time is the stream record's as written (one made by hand): strftime's %Y
    writes year 1 as "1", not "0001", so the older-calls link after such a row read back
    as no cursor, and the page said the link was damaged."""
    cursor = Cursor(moment, 42)
    assert Cursor.parse(str(cursor)) == cursor


# -- Revoked keys ------------------------------------------------------------------------


def test_calls_after_revocation_are_flagged_and_counted_in_the_header(
    signed_in, key, api, user: User
):
    for _ in range(2):
        assert api.post(INVOKE, {"prompt": "hi"}).status_code == 200
    key.revoke(by=user)
    for _ in range(3):
        refused = api.post(INVOKE, {"prompt": "hi"})
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "expired_api_key"

    response = signed_in.get(usage_url(key))
    html = response.content.decode()
    assert response.context["summary"].revoked_key_uses == 3
    assert "3 calls after revocation" in html
    header = html[html.index('class="revoked-alert"') :].split("</a>")[0]
    assert "last refused" in header and "from 127.0.0.1" in header
    assert html.count('class="row-revoked"') == 3
    assert html.count(">revoked key</span>") == 3
    assert len(rows_of(response)) == 5
    # The header's count leads to exactly those calls.
    flagged = walk(signed_in, usage_url(key, outcome="revoked_key"))
    assert flagged == newest_first(key, outcome=Outcome.REVOKED_KEY)
    assert len(flagged) == 3


def test_calls_after_expiry_say_expiry(signed_in, key, now):
    ApiKey.objects.filter(pk=key.pk).update(expires_at=now - timedelta(hours=2))
    usage_write([call(key, now - timedelta(minutes=5), status=401, error_code="expired_api_key")])
    html = signed_in.get(usage_url(key)).content.decode()
    assert "1 call after expiry" in html
    assert ">expired key</span>" in html
    assert '<span class="badge badge-warning">expired</span>' in html


def test_an_active_key_has_no_revocation_banner(signed_in, key, mixed):
    html = signed_in.get(usage_url(key)).content.decode()
    assert "after revocation" not in html and "after expiry" not in html


# -- The key's open alerts -------------------------------------------------------------


def open_flag(key: ApiKey, n: int, *, acknowledged: bool = False) -> None:
    from alerts.models import Flag

    moment = timezone.now()
    Flag.objects.create(
        project=key.project,
        api_key=key,
        kind=Flag.Kind.NEW_NETWORK,
        severity=Flag.Severity.MEDIUM,
        dedupe_key=f"test:{key.pk}:{n}",
        summary="Used from a new network.",
        first_seen=moment,
        last_seen=moment,
        acknowledged_at=moment if acknowledged else None,
    )


def test_the_keys_open_alerts_are_named_on_its_page_with_a_link_to_them(signed_in, key, mixed):
    open_flag(key, 1)
    open_flag(key, 2)
    open_flag(key, 3, acknowledged=True)
    html = signed_in.get(usage_url(key)).content.decode()
    alerts = reverse("alerts:flag_list", args=[key.project.slug]) + f"?key={key.pk}"
    assert f'href="{alerts}"' in html
    assert "2 open alerts" in html


def test_a_key_without_open_alerts_names_none(signed_in, key, mixed):
    open_flag(key, 1, acknowledged=True)
    assert "open alert" not in signed_in.get(usage_url(key)).content.decode()


# -- Who may see it ----------------------------------------------------------------------


def test_another_projects_key_is_not_found(
    signed_in,
    project,
    make_user: Callable[..., User],
    make_project: Callable[..., Project],
    make_key,
):
    stranger = make_user(email="mallory@example.com")
    theirs = make_project(stranger, name="Not yours")
    their_key, _ = make_key(theirs)
    usage_write([call(their_key, timezone.now())])
    through_our_project = reverse("usage:api_key_usage", args=[project.slug, their_key.pk])
    assert signed_in.get(through_our_project).status_code == 404
    assert signed_in.get(usage_url(their_key)).status_code == 404
    assert signed_in.get(through_our_project, headers=HTMX).status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in(client, key):
    response = client.get(usage_url(key))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


def test_only_get_is_allowed(signed_in, key):
    assert signed_in.post(usage_url(key)).status_code == 405


def test_the_page_never_contains_a_token(signed_in, api_key, api, now):
    key, token = api_key
    for _ in range(3):
        api.post(INVOKE, {"prompt": "hi"})
    api.post(INVOKE, {"prompt": "hi"}, token=token[:-1] + "x")  # a mistyped key
    usage_write([call(key, now, status=401, error_code="expired_api_key")])
    for url in (usage_url(key), usage_url(key, outcome="ok")):
        for headers in ({}, HTMX):
            html = signed_in.get(url, headers=headers).content.decode()
            assert token not in html
            assert not TOKEN_SHAPED.search(html)
    assert key.hint in signed_in.get(usage_url(key)).content.decode()
