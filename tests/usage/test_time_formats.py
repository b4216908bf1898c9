"""One way of writing a time across the dashboard ("4 Dec 2026, 14:30", UTC), and time
filters that read it back, so a time copied from a page can be pasted into a filter."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from core.forms import UtcDateTimeField
from tests.conftest import usage_call
from usage.writer import usage_write

AT = datetime(2026, 12, 4, 14, 30, 5, tzinfo=UTC)


def test_the_call_logs_write_dates_as_the_rest_of_the_dashboard(signed_in, project, api_key):
    key, _ = api_key
    usage_write([usage_call(AT, key=key)])
    for url in (
        reverse("usage:api_key_usage", args=[project.slug, key.pk]),
        reverse("usage:project_calls", args=[project.slug]),
    ):
        html = signed_in.get(url).content.decode()
        assert '<span class="date">4 Dec 2026</span>' in html, url
        assert "2026-12-04</span>" not in html, url


def test_time_filters_are_text_in_the_dashboards_format_not_a_local_picker(signed_in, project):
    html = signed_in.get(reverse("usage:project_calls", args=[project.slug])).content.decode()
    assert 'type="datetime-local"' not in html
    assert 'placeholder="4 Dec 2026, 14:30"' in html


def test_a_time_as_the_dashboard_writes_it_or_as_iso_filters_the_same(signed_in, project, api_key):
    key, _ = api_key
    usage_write([usage_call(AT, key=key), usage_call(AT.replace(hour=15), key=key)])
    url = reverse("usage:api_key_usage", args=[project.slug, key.pk])
    for since in ("4 Dec 2026, 15:00", "4 dec 2026 15:00", "2026-12-04T15:00", "2026-12-04 15:00"):
        rows = signed_in.get(url, {"since": since}).context["page"].rows
        assert [r.created_at.hour for r in rows] == [15], since


def test_odd_times_get_the_message_beside_the_field():
    field = UtcDateTimeField()
    odd_times = (
        "²",
        "4 Dec 9999, 10:00",
        "31 Feb 2026, 10:00",
        "x" * 5000,
        "\ud800",
        "25:00",
        # Past the years in UTC, however they read as written; the first two past Python's.
        "9999-12-31T23:59-23:59",
        "0001-01-01T00:00+23:59",
        "2999-12-31T23:59-23:59",
    )
    for odd in odd_times:
        with pytest.raises(ValidationError):
            field.clean(odd)
    assert f"{field.prepare_value(AT)}" == "4 Dec 2026, 14:30"


def test_a_time_with_any_iso_offset_filters_as_that_moment_in_utc(signed_in, project, api_key):
    """ISO 8601 allows offsets to ±23:59, PostgreSQL's timestamptz only to ±15:59: the
    filter hands the database the moment in UTC, never the offset it was written with."""
    key, _ = api_key
    usage_write([usage_call(AT, key=key), usage_call(AT.replace(day=5, hour=15), key=key)])
    for url in (
        reverse("usage:api_key_usage", args=[project.slug, key.pk]),
        reverse("usage:project_calls", args=[project.slug]),
        reverse("usage:project_calls_export", args=[project.slug]),
    ):
        # 5 Dec 14:00 at -23:59 is 6 Dec 13:59 UTC; 4 Dec 14:29 at +23:59 is 3 Dec 14:30.
        for field, value, hours in (
            ("until", "2026-12-05T14:00-23:59", [15, 14]),
            ("since", "2026-12-04T14:29+23:59", [15, 14]),
            ("since", "2026-12-05T16:00+01:00", [15]),
            ("until", "2026-12-05T16:00+01:00", [14]),
        ):
            response = signed_in.get(url, {field: value})
            assert response.status_code == 200, (url, field, value)
            if "page" in (response.context or {}):
                rows = response.context["page"].rows
                assert [r.created_at.hour for r in rows] == hours, (url, field, value)
            else:
                lines = b"".join(response.streaming_content).decode().splitlines()[1:]
                assert [int(line[11:13]) for line in lines] == hours, (url, field, value)


def test_a_time_a_link_carries_as_iso_is_shown_back_as_the_dashboard_writes_it(signed_in, project):
    """A chart's or an alert's link carries ISO ("2026-12-05T14:50"); the filter it opens
    shows it as every other time on the page is written, in UTC ("5 Dec 2026, 14:50")."""
    url = reverse("usage:project_calls", args=[project.slug])
    html = signed_in.get(
        url, {"since": "2026-12-05T14:50", "until": "2026-12-05T16:00+01:00"}
    ).content.decode()
    assert 'value="5 Dec 2026, 14:50"' in html
    assert 'value="5 Dec 2026, 15:00"' in html  # the moment, in UTC
    assert "2026-12-05T" not in html


def test_a_time_that_does_not_read_is_shown_back_as_typed_beside_its_error(signed_in, project):
    url = reverse("usage:project_calls", args=[project.slug])
    html = signed_in.get(url, {"since": "31 Feb 2026, 10:00"}).content.decode()
    assert 'value="31 Feb 2026, 10:00"' in html
    assert "Enter a date and time in UTC" in html


@pytest.mark.parametrize(
    "typed", ["0999-06-01T00:00", "0001-01-01T00:00", "9999-12-31T23:59", "2999-12-31T23:30-01:00"]
)
def test_a_time_outside_the_years_is_shown_back_as_typed_beside_its_error(
    signed_in, project, typed
):
    """A link's "0999-06-01T00:00" was shown back as "1 Jun 999, 00:00" beside "Enter a
    date from 2000 to 2999": rewritten in a form that no longer reads, so that correcting the
    year alone was refused again as no date at all."""
    url = reverse("usage:project_calls", args=[project.slug])
    html = signed_in.get(url, {"since": typed}).content.decode()
    assert f'value="{typed}"' in html, typed
    assert "Enter a date from 2000 to 2999." in html
