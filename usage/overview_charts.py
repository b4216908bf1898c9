"""The project overview's chart: calls per hour or per day, stacked by series, as SVG.

Drawn the way apikeys/charts.py draws the per-key charts (and with its scale helpers):
no script, no inline style, colours as SVG presentation attributes, widths in per cent
so that bars stretch with the page while text keeps its size, tick labels at negative x
in the room that overview.css leaves for them. Unlike those charts, the series here are
not fixed: token types, keys or outcomes, whichever the page asked for.

The chart is an image with a <title> and a <desc> that state its figures, and each bar
with calls has a <title> (its tooltip); the page carries the same figures as a table.
"""

from __future__ import annotations

import math
from datetime import datetime

from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from usage.charts import (
    AXIS,
    GRID,
    TEXT,
    calls_text,
    compact,
    crisp,
    nice_ceiling,
    svg_number,
)
from usage.overview import Bucket, ProjectOverview, Series

HEIGHT = 180
TOP = 10
BASELINE = 148
LABEL_Y = 168
MIN_SEGMENT = 1.5  # px: a single call among thousands still shows


def overview_chart(overview: ProjectOverview, *, chart_id: str) -> SafeString:
    """The overview's calls per bucket, stacked by its series, oldest on the left."""
    buckets = overview.buckets
    peak = max((b.counts.requests for b in buckets), default=0)
    top = nice_ceiling(peak)
    scale = (BASELINE - TOP) / top
    slot = 100 / max(len(buckets), 1)
    parts: list[str] = []

    for value in (0, top // 2, top) if peak else (0,):
        y = crisp(BASELINE - value * scale)
        parts.append(
            format_html(
                '<line x1="0" x2="100%" y1="{y}" y2="{y}" stroke="{colour}" stroke-width="1"/>'
                '<text x="-8" y="{y}" dy="0.32em" text-anchor="end" font-size="11" '
                'fill="{text}">{label}</text>',
                y=y,
                colour=AXIS if value == 0 else GRID,
                text=TEXT,
                label=compact(value),
            )
        )
    parts.extend(_time_axis(buckets, slot, by_day=overview.time_range.by_day))
    if peak == 0:
        parts.append(
            format_html(
                '<text x="50%" y="{}" text-anchor="middle" font-size="13" fill="{}">{}</text>',
                (TOP + BASELINE) // 2,
                TEXT,
                "No calls match these filters"
                if overview.filters.narrows
                else "No calls in this range",
            )
        )
    bar = slot * (0.72 if len(buckets) <= 48 else 0.8)
    for index, bucket in enumerate(buckets):
        if bucket.counts.requests:
            parts.append(
                _bar(
                    bucket,
                    overview.series,
                    x=index * slot,
                    slot=slot,
                    bar=bar,
                    scale=scale,
                    by_day=overview.time_range.by_day,
                )
            )

    return format_html(
        '<svg class="chart" width="100%" height="{height}" role="img" '
        'aria-labelledby="{id}-title {id}-desc" overflow="visible" '
        'xmlns="http://www.w3.org/2000/svg">'
        '<title id="{id}-title">{title}</title>'
        '<desc id="{id}-desc">{desc}</desc>{body}</svg>',
        height=HEIGHT,
        id=chart_id,
        title=chart_title(overview),
        desc=describe(overview),
        body=mark_safe("".join(parts)),  # noqa: S308 - each part came from format_html
    )


def chart_title(overview: ProjectOverview) -> str:
    unit = "day" if overview.time_range.by_day else "hour"
    return f"Calls per {unit}, {overview.time_range.name.lower()}"


def legend(overview: ProjectOverview) -> SafeString:
    """The key to the colours, each series with its calls in the range."""
    items = format_html_join(
        "",
        '<li><svg width="10" height="10" aria-hidden="true"><rect width="10" height="10" '
        'rx="2" fill="{}"/></svg><span>{}</span> <span class="legend-count">{}</span></li>',
        ((s.colour, s.label, f"{n:,}") for s, n in overview.series_totals),
    )
    return format_html('<ul class="chart-legend" role="list">{}</ul>', items)


def describe(overview: ProjectOverview) -> str:
    """The chart in words, for its <desc>."""
    time_range = overview.time_range
    span = f"from {_moment(time_range.since)} to {_moment(time_range.until)} UTC"
    totals = overview.totals
    if not totals.requests:
        return f"No calls {span}."
    split = ", ".join(f"{s.label} {n:,}" for s, n in overview.series_totals if n)
    busiest = overview.busiest
    assert busiest is not None
    unit = "day" if time_range.by_day else "hour"
    return (
        f"{calls_text(totals.requests)} {span} ({split}); {totals.errors:,} failed, "
        f"{totals.auth_failures:,} of them on authentication. Busiest {unit}: "
        f"{_bucket_name(busiest.start, by_day=time_range.by_day)}, "
        f"{calls_text(busiest.counts.requests)}."
    )


def _bar(
    bucket: Bucket,
    series: list[Series],
    *,
    x: float,
    slot: float,
    bar: float,
    scale: float,
    by_day: bool,
) -> str:
    # f-strings, not format_html: every value here is a number we computed, a colour
    # constant, or the escaped title.
    segments = []
    y = float(BASELINE)
    left = svg_number(x + (slot - bar) / 2)
    width = svg_number(bar)
    for part in series:
        count = bucket.count(part)
        if not count:
            continue
        height = max(count * scale, MIN_SEGMENT)
        y -= height
        segments.append(
            f'<rect x="{left}%" y="{svg_number(y)}" width="{width}%" height="{svg_number(height)}" '
            f'fill="{part.colour}"/>'
        )
    split = ", ".join(f"{s.label} {bucket.count(s):,}" for s in series if bucket.count(s))
    title = f"{_bucket_name(bucket.start, by_day=by_day)}: {calls_text(bucket.counts.requests)}"
    if len(series) > 1:
        title += f" ({split})"
    if bucket.counts.errors:
        title += f"; {bucket.counts.errors:,} failed"
    return (
        f'<g class="chart-bar"><title>{escape(title)}</title>'
        f'<rect class="chart-hit" x="{svg_number(x)}%" y="{TOP}" width="{svg_number(slot)}%" '
        f'height="{BASELINE - TOP}" fill="#4f46e5" fill-opacity="0"/>{"".join(segments)}</g>'
    )


def _time_axis(buckets: list[Bucket], slot: float, *, by_day: bool) -> list[str]:
    """Under hourly bars, every sixth hour, with the date at midnight; under daily bars,
    every day or, for a long range, every few days. When there are more than a few
    labels, every other one is marked `chart-tick-alt`, which a narrow screen hides."""
    count = len(buckets)
    every = (1 if count <= 10 else math.ceil(count / 8)) if by_day else 6
    ticks: list[tuple[int, str]] = []
    for index, bucket in enumerate(buckets):
        start = bucket.start
        if by_day and index % every == 0:
            ticks.append(
                (index, f"{start:%a} {start.day}" if count <= 10 else f"{start.day} {start:%b}")
            )
        elif not by_day and start.hour % every == 0:
            ticks.append(
                (index, f"{start:%a} {start.day}" if start.hour == 0 else f"{start:%H}:00")
            )
    crowded = len(ticks) > 5
    return [
        format_html(
            '<text{alternate} x="{x}%" y="{y}" text-anchor="middle" font-size="11" '
            'fill="{text}">{label}</text>',
            alternate=mark_safe(' class="chart-tick-alt"' if crowded and n % 2 else ""),  # noqa: S308
            x=svg_number((index + 0.5) * slot),
            y=LABEL_Y,
            text=TEXT,
            label=label,
        )
        for n, (index, label) in enumerate(ticks)
    ]


def _bucket_name(start: datetime, *, by_day: bool) -> str:
    day = f"{start:%a} {start.day} {start:%b}"
    if by_day:
        return day
    return f"{day}, {start:%H}:00–{(start.hour + 1) % 24:02d}:00 UTC"


def _moment(moment: datetime) -> str:
    return f"{moment:%H}:{moment:%M} on {moment:%a} {moment.day} {moment:%b}"
