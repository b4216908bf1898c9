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
    for odd in ("²", "4 Dec 9999, 10:00", "31 Feb 2026, 10:00", "x" * 5000, "\ud800", "25:00"):
        with pytest.raises(ValidationError):
            field.clean(odd)
    assert f"{field.prepare_value(AT)}" == "4 Dec 2026, 14:30"
