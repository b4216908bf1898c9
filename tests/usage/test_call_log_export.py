"""The call log's CSV export (issue 14, point 4), and what every CSV export shares (issue 13):
the rows the call log lists over all its pages, nothing of another project, one naming of
columns, one way of writing a time, no formula a spreadsheet would run, and no 500 for any
query string."""

from __future__ import annotations

import contextlib
import csv
import io
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import pytest
from django.db import connection
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Project
from accounts.services import project_rename
from apikeys.models import PersonalAccessToken
from apikeys.services import client_token_create, personal_token_create
from audit.export import CSV_HEADER as AUDIT_CSV_HEADER
from core.csv_stream import (
    CUT_BY_ROWS,
    CUT_BY_SLOW_READ,
    CUT_BY_SLOW_READ_NONE,
    CUT_BY_TIME,
    IP_COLUMN,
    TIME_COLUMN,
    csv_cell,
    csv_header,
    csv_lines,
    csv_time,
)
from tests.conftest import HTMX, usage_call
from usage import export as usage_export
from usage import views as usage_views
from usage.export import USAGE_CSV_HEADER
from usage.models import UsageRecord
from usage.writer import usage_write

ISO_UTC_SECOND = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
MINUTE = "%Y-%m-%dT%H:%M"
FILTERS = (
    "key",
    "token_kind",
    "outcome",
    "status",
    "ip",
    "since",
    "until",
    "request_id",
    "client_token",
    "agent",
    "user_agent",
    "path",
)


def calls_url(project: Project) -> str:
    return reverse("usage:project_calls", args=[project.slug])


def export_url(project: Project) -> str:
    return reverse("usage:project_calls_export", args=[project.slug])


def read_csv(response: Any) -> tuple[list[str], list[dict[str, str]]]:
    assert isinstance(response, StreamingHttpResponse)
    assert response.status_code == 200
    lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    header, body = lines[0], lines[1:]
    return header, [dict(zip(header, row, strict=True)) for row in body]


def listed_request_ids(client: Any, project: Project, params: dict[str, str]) -> list[str]:
    """The request ids that the call log lists for `params`, following its pages."""
    response = client.get(calls_url(project), params)
    ids = [row.request_id for row in response.context["page"].rows]
    while older := response.context["links"]["older"]:
        response = client.get(older)
        ids += [row.request_id for row in response.context["page"].rows]
    return ids


@pytest.fixture
def world(project, user, make_key, make_user):
    """Three pages of calls in this project, by every kind of token, and calls of another
    project at the same moments, from the same address."""
    now = timezone.now().replace(second=30)
    prod, _ = make_key(project, name="Production")
    ci, _ = make_key(project, name="CI")
    minted, _ = client_token_create(project=project, context={"u": 1}, api_key=prod)
    pat, _ = personal_token_create(user=user, name="Laptop", projects=[project])
    entries = []
    for minute in range(1, 111):
        status, code = 200, ""
        if minute % 7 == 0:
            status, code = 401, "invalid_api_key"
        elif minute % 11 == 0:
            status, code = 500, "internal_error"
        ip = "198.51.100.9" if minute % 3 == 0 else "203.0.113.7"
        at = now - timedelta(minutes=minute)
        entries.append(usage_call(at, key=prod, status=status, error_code=code, ip=ip))
    entries += [
        usage_call(now - timedelta(minutes=m, seconds=5), key=ci, status=403, error_code="nope")
        for m in range(5)
    ]
    entries += [
        usage_call(now - timedelta(minutes=m, seconds=10), client_token=minted)
        for m in (2, 9, 40, 90)
    ]
    entries += [
        usage_call(now - timedelta(minutes=m, seconds=15), pat=pat, project=project)
        for m in (1, 50, 100)
    ]
    other_owner = make_user(email="other@example.com")
    other = Membership.objects.get(user=other_owner).project
    theirs, _ = make_key(other, name="Theirs")
    their_token, _ = client_token_create(project=other, context={}, api_key=theirs)
    entries += [
        usage_call(now - timedelta(minutes=m, seconds=20), key=theirs, ip="198.51.100.9")
        for m in range(30)
    ]
    entries.append(usage_call(now - timedelta(minutes=3), client_token=their_token))
    usage_write(entries)
    return {
        "now": now,
        "prod": prod,
        "ci": ci,
        "minted": minted,
        "pat": pat,
        "other": other,
        "theirs": theirs,
        "their_token": their_token,
    }


type Query = Callable[[dict[str, Any]], dict[str, str]]

QUERIES: dict[str, Query] = {
    "none": lambda w: {},
    "key": lambda w: {"key": str(w["prod"].pk)},
    "other key": lambda w: {"key": str(w["ci"].pk)},
    "client tokens": lambda w: {"token_kind": "client_token"},
    "personal tokens": lambda w: {"token_kind": "personal_access_token"},
    "outcome": lambda w: {"outcome": "auth_failure"},
    "status": lambda w: {"status": "500"},
    "ip": lambda w: {"ip": "198.51.100.9"},
    "since and until": lambda w: {
        "since": f"{w['now'] - timedelta(minutes=75):{MINUTE}}",
        "until": f"{w['now'] - timedelta(minutes=8):{MINUTE}}",
    },
    "client token": lambda w: {"client_token": w["minted"].public_id},
    "request id": lambda w: {
        "request_id": UsageRecord.objects.filter(api_key=w["ci"]).first().request_id
    },
    "all at once": lambda w: {
        "key": str(w["prod"].pk),
        "token_kind": "api_key",
        "outcome": "ok",
        "ip": "203.0.113.7",
        "since": f"{w['now'] - timedelta(minutes=100):{MINUTE}}",
        "until": f"{w['now'] - timedelta(minutes=2):{MINUTE}}",
    },
}


# -- The rows -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", QUERIES)
def test_the_export_holds_the_rows_the_call_log_lists_on_all_its_pages(
    signed_in, project, world, name
):
    params = QUERIES[name](world)
    listed = listed_request_ids(signed_in, project, params)
    _, rows = read_csv(signed_in.get(export_url(project), params))
    assert [row["request_id"] for row in rows] == listed
    assert listed  # each query matches something, so that the comparison tests the export
    if not params:
        assert len(rows) == 110 + 5 + 4 + 3


def test_the_export_is_newest_first(signed_in, project, world):
    _, rows = read_csv(signed_in.get(export_url(project)))
    times = [row[TIME_COLUMN] for row in rows]
    assert times == sorted(times, reverse=True)


def test_a_pager_position_in_the_link_is_ignored_the_file_is_every_page(signed_in, project, world):
    first = signed_in.get(calls_url(project), {"ip": "203.0.113.7"})
    older = first.context["links"]["older"]
    assert "before=" in older
    _, rows = read_csv(signed_in.get(older.replace(calls_url(project), export_url(project))))
    assert [r["request_id"] for r in rows] == listed_request_ids(
        signed_in, project, {"ip": "203.0.113.7"}
    )
    _, damaged = read_csv(signed_in.get(export_url(project), {"before": "x", "after": "y"}))
    assert len(damaged) == 110 + 5 + 4 + 3


def test_each_row_says_what_the_call_was(signed_in, project, world):
    _, rows = read_csv(signed_in.get(export_url(project), {"token_kind": "client_token"}))
    record = UsageRecord.objects.get(request_id=rows[0]["request_id"])
    assert rows[0] == {
        TIME_COLUMN: csv_time(record.created_at),
        "key_name": "Production",
        "key_hint": world["prod"].hint,
        "token_type": "client_token",
        "client_token_id": world["minted"].public_id,
        "method": "POST",
        "path": "/v1/agents/my-agent/invoke",
        "agent": "my-agent",
        "status": "200",
        "error_code": "",
        "outcome": "ok",
        "latency_ms": "1.500",
        IP_COLUMN: "203.0.113.7",
        "user_agent": "reminix-python/1.4",
        "request_id": record.request_id,
    }
    _, by_pat = read_csv(
        signed_in.get(export_url(project), {"token_kind": "personal_access_token"})
    )
    assert {(r["key_name"], r["key_hint"]) for r in by_pat} == {("Laptop", world["pat"].hint)}


def test_the_export_is_a_streamed_attachment_named_for_the_project_and_day(
    signed_in, project, world, hold_clock
):
    now = hold_clock(usage_views)  # the day cannot turn between the answer and the check
    response = signed_in.get(export_url(project))
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="reminix-calls-{project.slug}-{now:%Y-%m-%d}.csv"'
    )
    assert "no-store" in response["Cache-Control"]


def test_the_export_stops_at_its_cap_with_the_newest_calls(signed_in, project, world, monkeypatch):
    monkeypatch.setattr("core.csv_stream.EXPORT_MAX_ROWS", 7)
    _, rows = read_csv(signed_in.get(export_url(project)))
    assert [r["request_id"] for r in rows[:-1]] == listed_request_ids(signed_in, project, {})[:7]
    assert rows[-1][TIME_COLUMN].startswith("NOT COMPLETE: this file stops at the newest 7 rows")


# -- Another project ------------------------------------------------------------------------


def test_another_projects_calls_are_never_in_the_export(signed_in, project, world):
    theirs = set(
        UsageRecord.objects.filter(project=world["other"]).values_list("request_id", flat=True)
    )
    for name, query in QUERIES.items():
        _, rows = read_csv(signed_in.get(export_url(project), query(world)))
        assert not theirs & {r["request_id"] for r in rows}, name
        assert "Theirs" not in {r["key_name"] for r in rows}, name
    their_call = next(iter(theirs))
    _, rows = read_csv(signed_in.get(export_url(project), {"request_id": their_call}))
    assert rows == []
    _, rows = read_csv(
        signed_in.get(export_url(project), {"client_token": world["their_token"].public_id})
    )
    assert rows == []


def test_another_projects_key_is_refused_beside_the_key_filter_and_names_nothing(
    signed_in, project, world
):
    response = signed_in.get(export_url(project), {"key": world["theirs"].pk})
    html = response.content.decode()
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert 'id="id_key_error"' in html
    assert "Theirs" not in html and world["theirs"].hint not in html


def test_another_projects_export_is_404_and_signed_out_is_sent_to_sign_in(
    client, signed_in, project, world
):
    assert signed_in.get(export_url(world["other"])).status_code == 404
    signed_in.logout()
    response = client.get(export_url(project))
    assert response.status_code == 302 and "login" in response["Location"]


# -- Bad filters and hostile query strings ------------------------------------------------


def test_a_bad_filter_shows_the_call_log_with_the_error_beside_its_field(signed_in, project, world):
    response = signed_in.get(export_url(project), {"status": "²", "ip": "nope"})
    html = response.content.decode()
    assert response.status_code == 400
    assert 'id="id_status_error"' in html and 'id="id_ip_error"' in html
    # Corrected and sent again, the form shows the log rather than downloading a file.
    assert f'action="{calls_url(project)}"' in html


HOSTILE = [
    "\x00",
    "a\x00b",
    "²",
    "٣",
    "9999-12-31",
    "9999-12-31T23:59",
    "0001-01-01T00:00",
    "9" * 40,
    str(2**63),
    "-1",
    "1e400",
    "req_" + "a" * 24 + "\x00",
    "=cmd|' /C calc'!A0",
]


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
@pytest.mark.parametrize("url", [calls_url, export_url], ids=["log", "export"])
def test_a_hostile_value_in_any_filter_is_answered_never_a_500(
    signed_in, project, world, url, value
):
    for params in [{name: value} for name in FILTERS] + [dict.fromkeys(FILTERS, value)]:
        response = signed_in.get(url(project), params)
        assert response.status_code in (200, 400), params
        if isinstance(response, StreamingHttpResponse):
            b"".join(response.streaming_content)  # an export fails, if at all, while streaming


@pytest.mark.parametrize("url", [calls_url, export_url], ids=["log", "export"])
def test_a_lone_surrogate_and_stray_bytes_in_the_query_are_answered(signed_in, project, url):
    for raw in ("%ED%A0%80", "%FF", "%00", "%C2%B2"):
        query = "&".join(f"{name}={raw}" for name in (*FILTERS, "before", "after"))
        response = signed_in.get(f"{url(project)}?{query}")
        assert response.status_code in (200, 400), raw
        if isinstance(response, StreamingHttpResponse):
            b"".join(response.streaming_content)


EXPORT_FILTERS = {
    "usage:project_calls_export": FILTERS,
    "usage:project_usage_export": ("range", "since", "until", "key", "token_kind", "outcome", "ip"),
    "accounts:project_audit_csv": ("action", "actor", "ip", "since", "until", "before", "after"),
    "accounts:user_audit_csv": ("action", "ip", "since", "until", "before", "after"),
}
DATES = ("9999-12-31", "9999-12-31T23:59", "0001-01-01", "2999-12-31", "2999-12-31T23:59")


@pytest.mark.parametrize("name", EXPORT_FILTERS)
def test_a_hostile_value_or_a_far_date_in_any_export_filter_is_answered_never_a_500(
    signed_in, project, world, name
):
    url = reverse(name, args=[project.slug] if "project" in name else [])
    fields = EXPORT_FILTERS[name]
    for value in (*HOSTILE, *DATES, "5000 names " * 5000):
        for params in [{field: value} for field in fields] + [dict.fromkeys(fields, value)]:
            response = signed_in.get(url, params)
            assert response.status_code in (200, 400), (params, response.status_code)
            if isinstance(response, StreamingHttpResponse):
                b"".join(response.streaming_content)


# -- Formulas -------------------------------------------------------------------------------


def test_cells_a_spreadsheet_would_run_as_formulas_are_quoted(signed_in, project, user, make_key):
    key, _ = make_key(project, name='=HYPERLINK("http://evil.example")')
    pat, _ = personal_token_create(user=user, name="@SUM(A1)", projects=[project])
    now = timezone.now()
    usage_write(
        [
            usage_call(now - timedelta(seconds=1), key=key, agent="-agent", user_agent="+cmd"),
            usage_call(now - timedelta(seconds=2), key=key, path="=1+1", user_agent="\tx"),
            usage_call(now - timedelta(seconds=3), pat=pat, project=project, user_agent="\rx"),
        ]
    )
    _, rows = read_csv(signed_in.get(export_url(project)))
    assert [r["key_name"] for r in rows] == [
        '\'=HYPERLINK("http://evil.example")',
        '\'=HYPERLINK("http://evil.example")',
        "'@SUM(A1)",
    ]
    assert [r["user_agent"] for r in rows] == ["'+cmd", "'\tx", "'\rx"]
    assert rows[0]["agent"] == "'-agent" and rows[1]["path"] == "'=1+1"
    cells = [cell for row in rows for cell in row.values()]
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)


def test_a_cell_is_written_one_way_whatever_export_it_is_in():
    moment = datetime(2026, 12, 4, 14, 42, 3, 999_999, tzinfo=UTC).astimezone(
        timezone.get_fixed_timezone(60)
    )
    assert csv_cell(moment) == "2026-12-04T14:42:03Z"
    assert csv_cell(None) == ""
    assert csv_cell(401) == 401
    assert csv_cell("-2") == "'-2"
    assert csv_cell("ada@example.com") == "ada@example.com"


# -- What every export shares ---------------------------------------------------------------


def every_export(client: Any, project: Project) -> dict[str, Any]:
    slug = [project.slug]
    return {
        "usage": client.get(reverse("usage:project_usage_export", args=slug)),
        "calls": client.get(reverse("usage:project_calls_export", args=slug)),
        "token": client.get(
            reverse(
                "usage:personal_token_usage_export",
                args=[PersonalAccessToken.objects.get(name="Laptop").pk],
            )
        ),
        "project audit": client.get(reverse("accounts:project_audit_csv", args=slug)),
        "user audit": client.get(reverse("accounts:user_audit_csv")),
    }


def test_every_export_names_its_columns_one_way(signed_in, project, user, world):
    project_rename(project=project, name="Renamed", by=user)
    headers = {
        name: read_csv(response)[0] for name, response in every_export(signed_in, project).items()
    }
    # The two exports of the usage log have the same columns, in the same order.
    assert headers["usage"] == headers["calls"] == list(USAGE_CSV_HEADER.names)
    # A personal access token's: the same, and each call's project (its calls span them).
    assert headers["token"] == [TIME_COLUMN, "project", *USAGE_CSV_HEADER.names[1:]]
    assert headers["project audit"] == headers["user audit"] == list(AUDIT_CSV_HEADER.names)
    for name, header in headers.items():
        assert all(SNAKE_CASE.fullmatch(column) for column in header), name
        assert header[0] == TIME_COLUMN and IP_COLUMN in header, name


def test_every_export_writes_times_in_iso_8601_utc_to_the_second(signed_in, project, user, world):
    project_rename(project=project, name="Renamed", by=user)
    for name, response in every_export(signed_in, project).items():
        _, rows = read_csv(response)
        assert rows, name
        assert all(ISO_UTC_SECOND.fullmatch(row[TIME_COLUMN]) for row in rows), name
    _, rows = read_csv(signed_in.get(export_url(project)))
    record = UsageRecord.objects.get(request_id=rows[0]["request_id"])
    assert rows[0][TIME_COLUMN] == record.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("moment", "written"),
    [
        (datetime(1, 1, 1, 0, 30, 5, tzinfo=UTC), "0001-01-01T00:30:05Z"),
        (datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "0999-12-31T23:59:59Z"),
        (datetime.max.replace(tzinfo=UTC), "9999-12-31T23:59:59Z"),
    ],
)
def test_a_time_before_year_1000_is_written_with_four_digits_of_year(moment, written):
    """strftime's %Y writes year 1 as "1": a row at such a time (a log record or an audit
    event made by hand, an import) was exported as "1-01-01T00:30:05Z", which is no ISO
    8601 time, and a spreadsheet or a script parsing the column stopped at it."""
    assert csv_time(moment) == written


def test_every_export_stops_at_the_row_cap_and_its_last_row_says_so(
    signed_in, project, user, world, monkeypatch
):
    project_rename(project=project, name="Renamed", by=user)
    full = {
        name: read_csv(response)[1] for name, response in every_export(signed_in, project).items()
    }
    monkeypatch.setattr("core.csv_stream.EXPORT_MAX_ROWS", 2)
    for name, response in every_export(signed_in, project).items():
        assert len(full[name]) > 2, name
        _, rows = read_csv(response)
        assert rows[:2] == full[name][:2], name  # the newest, as in the whole file
        note = list(rows[2].values())
        assert len(rows) == 3 and note[0] == CUT_BY_ROWS.format(rows=2), name
        assert not any(note[1:]), name  # one note, in the first column a spreadsheet shows


def test_an_export_at_exactly_the_cap_is_whole_and_says_nothing(
    signed_in, project, make_key, monkeypatch
):
    now = timezone.now()
    key, _ = make_key(project, name="Production")
    usage_write([usage_call(now - timedelta(seconds=s), key=key) for s in (1, 2)])
    monkeypatch.setattr("core.csv_stream.EXPORT_MAX_ROWS", 2)
    _, rows = read_csv(signed_in.get(export_url(project)))
    assert len(rows) == 2 and all(row["request_id"] for row in rows)


def test_every_export_stops_when_its_time_is_up_and_its_last_row_says_so(
    signed_in, project, user, world, monkeypatch
):
    """Gunicorn ends a worker that streams past its timeout mid-file, silently: an export
    ends itself first, with a note. Here the time is up after the first piece written."""
    project_rename(project=project, name="Renamed", by=user)
    monkeypatch.setattr("core.csv_stream.ROWS_PER_WRITE", 2)
    monkeypatch.setattr("core.csv_stream.EXPORT_MAX_SECONDS", 0)
    for name, response in every_export(signed_in, project).items():
        _, rows = read_csv(response)
        assert len(rows) == 3, name
        assert all(ISO_UTC_SECOND.fullmatch(row[TIME_COLUMN]) for row in rows[:2]), name
        assert rows[2][TIME_COLUMN] == CUT_BY_TIME.format(rows=2, seconds=0), name


@pytest.mark.parametrize(
    "names",
    [
        ("time", "ip"),
        (TIME_COLUMN, "key name"),
        (TIME_COLUMN, "Key"),
        (TIME_COLUMN, "a", "a"),
        ("a", TIME_COLUMN),
        (),
    ],
)
def test_a_header_that_breaks_the_naming_is_refused_when_it_is_built(names):
    with pytest.raises(ValueError):
        csv_header(*names)


# -- The link -------------------------------------------------------------------------------


def export_link(html: str) -> str:
    match = re.search(r'href="([^"]*calls/export\.csv[^"]*)"[^>]*download', html)
    assert match, "no export link"
    return unescape(match[1])


def test_the_call_log_links_its_export_beside_the_filters_with_the_same_filters(
    signed_in, project, world
):
    params = {"ip": "203.0.113.7", "outcome": "ok"}
    first = signed_in.get(calls_url(project), params)
    page = signed_in.get(first.context["links"]["older"])
    html = page.content.decode()
    assert "Download CSV" in html
    start = html.index('id="calls-filters"')
    filters = html[start : html.index("</form>", start)]
    href = export_link(filters)
    assert "before=" not in href
    _, rows = read_csv(signed_in.get(href))
    assert [r["request_id"] for r in rows] == listed_request_ids(signed_in, project, params)


def test_htmx_filtering_redraws_the_filters_out_of_band_with_errors_and_the_export_link(
    signed_in, project, world
):
    fragment = signed_in.get(calls_url(project), {"status": "500"}, headers=HTMX)
    html = fragment.content.decode()
    assert 'id="calls-filters"' in html and 'hx-swap-oob="true"' in html
    assert export_link(html).endswith("?status=500")
    refused = signed_in.get(calls_url(project), {"status": "²"}, headers=HTMX).content.decode()
    # The error stands beside its field, and no export link offers the refused filter.
    assert 'hx-swap-oob="true"' in refused and "Enter an HTTP status code" in refused
    assert "Download CSV" not in refused


def test_no_link_when_there_is_nothing_to_export(signed_in, project):
    assert "Download CSV" not in signed_in.get(calls_url(project)).content.decode()


def test_the_overview_says_beside_its_export_when_the_file_will_hold_only_the_newest(
    signed_in, project, world, monkeypatch
):
    url = reverse("usage:project_usage", args=[project.slug])
    assert "The file holds the newest" not in signed_in.get(url).content.decode()
    monkeypatch.setattr(usage_views, "EXPORT_MAX_ROWS", 7)
    html = signed_in.get(url).content.decode()
    assert "The file holds the newest 7: narrow the range for the rest." in html


# -- A read the database cancels ------------------------------------------------------------


def database_cancel() -> None:
    """Raise what the database raises for a statement it cancels, as Django raises it:
    PostgreSQL's statement timeout (SQLSTATE 57014), SQLite's interrupt."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = '10ms'")  # tests run in a transaction
            cursor.execute("SELECT pg_sleep(1)")
    raw = connection.connection
    raw.set_progress_handler(lambda: 1, 1)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        raw.set_progress_handler(None, 1)


@contextlib.contextmanager
def database_cancels(matches: Callable[[str], bool]) -> Iterator[None]:
    """Each statement of this connection for which `matches(sql)` holds is cancelled by
    the database before it runs, as one too slow for the statement timeout would be."""

    def wrapper(execute, sql, params, many, context):
        if matches(sql):
            database_cancel()
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield


def export_read(sql: str) -> bool:
    return "ORDER BY" in sql and any(
        f'FROM "{table}"' in sql for table in ("apikeys_usagerecord", "accounts_auditevent")
    )


def test_an_export_whose_read_the_database_cancels_ends_with_a_note_not_a_broken_file(
    signed_in, project, user, world
):
    """A filter that matches almost nothing makes the read scan a huge log until the
    database cancels it: the file still ends with a note that says what to narrow."""
    project_rename(project=project, name="Renamed", by=user)
    responses = every_export(signed_in, project)
    with database_cancels(export_read):
        for name, response in responses.items():
            _, rows = read_csv(response)
            assert len(rows) == 1, name
            note = list(rows[0].values())
            # Not "stops after the newest 0 rows: finding more rows…": none were found.
            assert "0 rows" not in note[0] and "more rows" not in note[0], name
            assert note[0] == CUT_BY_SLOW_READ_NONE, name
            assert not any(note[1:]), name
    assert "shorter time range" in CUT_BY_SLOW_READ


def test_a_batch_the_database_cancels_mid_file_keeps_the_rows_written_and_says_so(
    signed_in, project, world, monkeypatch
):
    _, full = read_csv(signed_in.get(export_url(project)))
    monkeypatch.setattr("usage.export.EXPORT_CHUNK", 2)
    monkeypatch.setattr("core.csv_stream.ROWS_PER_WRITE", 2)
    learn = usage_export._learn_names
    calls = []

    def second_batch_cancelled(*args: Any) -> None:
        calls.append(args)
        if len(calls) == 3:  # each batch learns its keys', then its PATs' names
            database_cancel()
        learn(*args)

    monkeypatch.setattr("usage.export._learn_names", second_batch_cancelled)
    _, rows = read_csv(signed_in.get(export_url(project)))
    assert rows[:2] == full[:2]
    assert len(rows) == 3 and rows[2][TIME_COLUMN] == CUT_BY_SLOW_READ.format(rows=2)


def slow_read() -> Iterator[tuple[object, ...]]:
    """A read that finds nothing after seconds of work, as a filter that matches almost
    nothing in a huge log does."""
    slow = {
        "postgresql": "SELECT 1 FROM pg_sleep(6) WHERE random() < 0",
        "sqlite": "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n "
        "WHERE x < 30000000) SELECT x FROM n WHERE x < 0",
    }[connection.vendor]
    with connection.cursor() as cursor:
        cursor.execute(slow)
        yield from cursor.fetchall()


def test_a_read_that_would_outlast_the_exports_time_is_cut_when_the_time_is_up(db, monkeypatch):
    """Not at the database's own statement timeout (30 s, past gunicorn's): the export's
    reads end with its time, and the file says so."""
    monkeypatch.setattr("core.csv_stream.EXPORT_MAX_SECONDS", 0.2)
    header = csv_header(TIME_COLUMN, "name")
    lines = list(csv.reader(io.StringIO("".join(csv_lines(header, slow_read())))))
    assert lines == [[TIME_COLUMN, "name"], [CUT_BY_SLOW_READ_NONE, ""]]


def test_an_export_leaves_the_connections_statement_timeout_as_it_was(signed_in, project, world):
    if connection.vendor != "postgresql":
        pytest.skip("statement_timeout is PostgreSQL's")

    def timeout() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            return cursor.fetchone()[0]

    before = timeout()
    _, rows = read_csv(signed_in.get(export_url(project)))
    assert rows and timeout() == before


@pytest.mark.django_db(transaction=True)
def test_a_read_outside_a_transaction_as_in_production_also_ends_with_the_exports_time(
    project, monkeypatch
):
    """The file streams after the view returned, in autocommit, where Django reads through
    a cursor WITH HOLD: PostgreSQL runs its query whole as the DECLARE commits, where no
    statement timeout applies, so a read that scans a huge log ran for as long as it took."""
    if connection.vendor != "postgresql":
        pytest.skip("WITH HOLD cursors and statement_timeout are PostgreSQL's")
    monkeypatch.setattr("core.csv_stream.EXPORT_MAX_SECONDS", 0.2)
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        (before,) = cursor.fetchone()
    slow = (
        Project.objects.filter(pk=project.pk)
        .filter(RawSQL("pg_sleep(6) IS NULL", [], output_field=BooleanField()))
        .values_list("created_at", "name")
    )
    assert not connection.in_atomic_block
    header = csv_header(TIME_COLUMN, "name")
    text = "".join(csv_lines(header, slow.iterator(chunk_size=100)))
    assert list(csv.reader(io.StringIO(text))) == [
        [TIME_COLUMN, "name"],
        [CUT_BY_SLOW_READ_NONE, ""],
    ]
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == (before,)


def connection_state() -> dict[str, object]:
    """What one request's export could leave on a kept connection for the next one."""
    state: dict[str, object] = {"atomic": connection.in_atomic_block}
    if connection.vendor == "postgresql":
        state["transaction"] = connection.connection.info.transaction_status.name
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('statement_timeout'), count(*) FROM pg_cursors")
            state["timeout and cursors"] = cursor.fetchone()
    return state


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("ending", ["client gone", "read fails", "read to the end"])
def test_an_export_however_it_ends_leaves_the_connection_as_it_found_it(
    project, world, monkeypatch, ending
):
    """Streamed after the view returned, in autocommit, on a connection kept for the next
    request (CONN_MAX_AGE): a client that goes away mid-file (the server closes the
    stream), or a failing read, leaves no transaction, timeout or cursor behind, and an
    unrelated statement after the export's time is up is not interrupted (SQLite's
    progress handler)."""
    monkeypatch.setattr("core.csv_stream.ROWS_PER_WRITE", 2)
    monkeypatch.setattr("core.csv_stream.EXPORT_MAX_SECONDS", 0.1)
    monkeypatch.setattr("core.csv_stream.READ_GRACE_SECONDS", 0.1)
    before = connection_state()
    rows = UsageRecord.objects.values_list("created_at", "request_id").iterator(chunk_size=3)

    def failing() -> Iterator[Any]:
        for n, row in enumerate(rows):
            yield row if n < 5 else (*row, "a column too many")

    stream = csv_lines(
        csv_header(TIME_COLUMN, "request_id"), failing() if ending == "read fails" else rows
    )
    next(stream), next(stream)
    assert connection.in_atomic_block == (connection.vendor == "postgresql")
    if ending == "client gone":
        stream.close()
    elif ending == "read fails":
        with pytest.raises(ValueError):
            list(stream)
    else:
        list(stream)
    assert connection_state() == before
    time.sleep(0.3)
    with connection.cursor() as cursor:
        cursor.execute(slow_enough_to_be_interrupted())
        assert cursor.fetchone()


def slow_enough_to_be_interrupted() -> str:
    """A statement of many steps (SQLite's progress handler is asked every 10,000)."""
    if connection.vendor == "postgresql":
        return "SELECT count(*) FROM pg_sleep(0.2)"
    return (
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 200000) "
        "SELECT count(*) FROM n"
    )
