"""A call log's time and path cells (display.log_time, display.request_path) read as the
date filters and the included template that made them before: the same markup, made once
per row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.template import Context, Template

MOMENTS = [
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(987, 7, 9, 0, 0, 0, 120, tzinfo=UTC),
    # Another zone is shown in the current one (UTC), as the date filter showed it.
    datetime(2026, 3, 1, 0, 30, 0, tzinfo=timezone(timedelta(hours=2))),
]

AS_BEFORE = Template(
    """<time datetime="{{ at|date:'c' }}"><span class="date">{{ at|date:"j M Y" }}</span> """
    """<span class="clock">{{ at|date:"H:i:s" }}</span></time>"""
)


@pytest.mark.parametrize("at", MOMENTS)
def test_a_calls_time_reads_as_the_three_date_filters_made_it(at: datetime) -> None:
    rendered = Template("{% load display %}{{ at|log_time }}").render(Context({"at": at}))
    assert rendered == AS_BEFORE.render(Context({"at": at}))


PATH_AS_BEFORE = Template(
    '{% load display %}{% if path|length > 28 %}<details class="reveal path-cut"><summary>'
    '<span class="path">{{ path|bdi }}</span><span class="visually-hidden"> (show all)</span>'
    '</summary><span class="reveal-whole">{{ path|bdi }}</span></details>'
    '<span class="path path-whole">{{ path|bdi }}</span>{% else %}'
    '<span class="path">{{ path|bdi }}</span>{% endif %}'
)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/agents/my-agent",
        "/v1/agents/my-agent/invoke",  # 26 characters: shown whole
        "/v1/agents/abcdefghijklmnop/x",  # 29: cut, and whole below
        "/v1/agents/<b>&\"'\u2069\u202e/invoke?x=1",
    ],
)
def test_a_calls_path_reads_as_the_included_template_made_it(path: str) -> None:
    rendered = Template("{% load display %}{{ path|request_path }}").render(Context({"path": path}))
    assert rendered == PATH_AS_BEFORE.render(Context({"path": path}))
