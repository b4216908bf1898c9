"""Usage charts as server-rendered SVG: no chart library, no script, no inline style.

One renderer, `stacked_bar_chart`, draws calls per hour or per day stacked by whichever
series a page asks for: a key's succeeded / errors / revoked-key calls, or the overview's
token types, keys or outcomes. `window_chart` and `overview_chart` hand it their figures.

The Content-Security-Policy allows styles only from our stylesheet, so colours are SVG
presentation attributes (fill=, stroke=), which it does not govern and which the
stylesheet can still override (hover). Across, positions are percentages of the chart's
width; down, pixels. Bars stretch with the page while text keeps its size, with no
viewBox scaling and nothing measured in the browser. Tick labels on the left sit at
negative x: the stylesheet gives `.chart-frame` a left margin for them.

Each chart is an image with a <title> and a <desc> that state its figures; every bar with
calls has a <title> of its own (the hover tooltip); the page beside it carries the same
figures as a table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from core.text_direction import html_isolated, text_isolated
from usage.key_usage import HourCounts, UsageWindow
from usage.overview import Bucket, ProjectOverview, Series

HEIGHT = 180
TOP = 10  # the top gridline; its label needs the room above it
BASELINE = 148
LABEL_Y = 168
MIN_SEGMENT = 1.5  # px: one call among thousands still shows
GRID = "#e2e3e9"
AXIS = "#c9cbd5"
TEXT = "#5f6170"


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: an hour or a day, its calls per series id, and its tooltip."""

    start: datetime
    counts: Mapping[str, int]
    title: str

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def stacked_bar_chart(
    bars: Sequence[Bar],
    series: Sequence[Series],
    *,
    chart_id: str,
    title: str,
    description: str,
    by_day: bool,
    empty_text: str,
) -> SafeString:
    """`bars` oldest on the left, each stacked bottom-up in the order of `series`."""
    peak = max((bar.total for bar in bars), default=0)
    top = nice_ceiling(peak)
    scale = (BASELINE - TOP) / top
    slot = 100 / max(len(bars), 1)
    parts: list[str] = []

    # An empty chart keeps only its baseline: gridlines would measure nothing.
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
    parts.extend(_time_axis([bar.start for bar in bars], slot, by_day=by_day))
    if peak == 0:
        parts.append(
            format_html(
                '<text x="50%" y="{}" text-anchor="middle" font-size="13" fill="{}">{}</text>',
                (TOP + BASELINE) // 2,
                TEXT,
                empty_text,
            )
        )
    width = slot * (0.72 if len(bars) <= 48 else 0.8)
    for index, bar in enumerate(bars):
        if bar.total:
            parts.append(_bar(bar, series, x=index * slot, slot=slot, width=width, scale=scale))

    return format_html(
        '<svg class="chart" width="100%" height="{height}" role="img" '
        'aria-labelledby="{id}-title {id}-desc" overflow="visible" '
        'xmlns="http://www.w3.org/2000/svg">'
        '<title id="{id}-title">{title}</title>'
        '<desc id="{id}-desc">{desc}</desc>{body}</svg>',
        height=HEIGHT,
        id=chart_id,
        title=title,
        desc=description,
        body=mark_safe("".join(parts)),  # noqa: S308 - each part came from format_html
    )


def legend(series: Sequence[Series], totals: Sequence[int] | None = None) -> SafeString:
    """The key to the colours, as a list beside a chart; with `totals`, each series' calls."""
    counts = [f"{n:,}" for n in totals] if totals is not None else [""] * len(series)
    items = format_html_join(
        "",
        '<li><svg width="10" height="10" aria-hidden="true"><rect width="10" height="10" '
        'rx="2" fill="{}"/></svg><span>{}</span>{}</li>',
        (
            (
                s.colour,
                html_isolated(s.label),  # a key's name, when split by key
                format_html(' <span class="legend-count">{}</span>', n) if n else "",
            )
            for s, n in zip(series, counts, strict=True)
        ),
    )
    return format_html('<ul class="chart-legend" role="list">{}</ul>', items)


def _count(shown: str) -> str:
    return format_html(' <span class="legend-count">{}</span>', shown) if shown else ""


def _bar(
    bar: Bar, series: Sequence[Series], *, x: float, slot: float, width: float, scale: float
) -> str:
    # f-strings, not format_html: a week's chart has 168 of these, and every value in
    # them is a number we computed, a colour constant, or the escaped title.
    segments = []
    y = float(BASELINE)
    left = svg_number(x + (slot - width) / 2)
    bar_width = svg_number(width)
    for part in series:
        count = bar.counts.get(part.id, 0)
        if not count:
            continue
        height = max(count * scale, MIN_SEGMENT)
        y -= height
        segments.append(
            f'<rect x="{left}%" y="{svg_number(y)}" width="{bar_width}%" '
            f'height="{svg_number(height)}" fill="{part.colour}"/>'
        )
    return (
        f'<g class="chart-bar"><title>{escape(bar.title)}</title>'
        f'<rect class="chart-hit" x="{svg_number(x)}%" y="{TOP}" width="{svg_number(slot)}%" '
        f'height="{BASELINE - TOP}" fill="#4f46e5" fill-opacity="0"/>{"".join(segments)}</g>'
    )


def _time_axis(starts: Sequence[datetime], slot: float, *, by_day: bool) -> list[SafeString]:
    """Under up to two days of hourly bars, every sixth hour (the date at midnight); under
    more hourly bars, each midnight with a dashed line; under daily bars, every day or,
    for a long range, every few days. When there are more than a few labels, every other
    one is marked `chart-tick-alt`, which a narrow screen hides."""
    count = len(starts)
    ticks: list[tuple[int, str]] = []
    lines: list[int] = []
    if by_day:
        every = 1 if count <= 10 else math.ceil(count / 8)
        for index, start in enumerate(starts):
            if index % every == 0:
                ticks.append(
                    (index, _day(start) if count <= 10 else f"{start.day} {_month(start)}")
                )
    elif count > 48:
        for index, start in enumerate(starts):
            if start.hour == 0 and 0 < index < count - 10:
                ticks.append((index, _day(start)))
                lines.append(index)
    else:
        for index, start in enumerate(starts):
            if start.hour % 6 == 0:
                ticks.append((index, _day(start) if start.hour == 0 else f"{start.hour:02d}:00"))
    crowded = len(ticks) > 5
    marks = [
        format_html(
            '<line x1="{x}%" x2="{x}%" y1="{top}" y2="{bottom}" stroke="{colour}" '
            'stroke-dasharray="2 3"/>',
            x=svg_number(index * slot),
            top=TOP,
            bottom=BASELINE + 6,
            colour=AXIS,
        )
        for index in lines
    ]
    return marks + [
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


# -- A key's windows ------------------------------------------------------------------------

KEY_SERIES: tuple[Series, ...] = (
    Series("ok", "Succeeded", "#8580ee"),
    Series("errors", "Errors", "#e0a21b"),
    Series("revoked", "Revoked or expired key", "#c02a2a"),
)


def window_chart(window: UsageWindow, *, chart_id: str, by_day: bool = False) -> SafeString:
    """A key's calls per hour (or per UTC day) over one window (the last 24 hours, the
    last 7 days): a week of hourly bars is too thin to see a day's failures in."""
    bars = [
        Bar(
            span.start,
            {s.id: getattr(span, s.id) for s in KEY_SERIES},
            _hour_title(span, by_day=by_day),
        )
        for span in (window.days if by_day else window.hours)
    ]
    return stacked_bar_chart(
        bars,
        KEY_SERIES,
        chart_id=chart_id,
        title=f"Calls per {'day' if by_day else 'hour'}, {window.name.lower()}",
        description=_describe_window(window),
        by_day=by_day,
        empty_text="No calls in this window",
    )


def _describe_window(window: UsageWindow) -> str:
    totals = window.totals
    span = f"from {_hour(window.start)} to {_hour(window.end)} UTC"
    if not totals.requests:
        return f"No calls {span}."
    busiest = max(window.hours, key=lambda h: h.requests)
    return (
        f"{calls_text(totals.requests)} {span}: {totals.ok:,} succeeded, {totals.errors:,} "
        f"failed with an error, {totals.revoked:,} used the key after it was revoked or "
        f"expired. Busiest hour: {_hour(busiest.start)}, {calls_text(busiest.requests)}."
    )


def _hour_title(hour: HourCounts, *, by_day: bool = False) -> str:
    parts = [f"{hour.ok:,} succeeded"]
    if hour.errors:
        parts.append(f"{hour.errors:,} errors")
    if hour.revoked:
        parts.append(f"{hour.revoked:,} with the revoked or expired key")
    return (
        f"{_bucket_name(hour.start, by_day=by_day)}: {calls_text(hour.requests)} "
        f"({', '.join(parts)})"
    )


# -- The project overview -------------------------------------------------------------------


def overview_chart(overview: ProjectOverview, *, chart_id: str) -> SafeString:
    """The overview's calls per bucket, stacked by the series it was asked for."""
    by_day = overview.time_range.by_day
    bars = [
        Bar(bucket.start, bucket.by_series, _bucket_title(bucket, overview.series, by_day))
        for bucket in overview.buckets
    ]
    return stacked_bar_chart(
        bars,
        overview.series,
        chart_id=chart_id,
        title=chart_title(overview),
        description=_describe_overview(overview),
        by_day=by_day,
        empty_text=(
            "No calls match these filters" if overview.filters.narrows else "No calls in this range"
        ),
    )


def overview_legend(overview: ProjectOverview) -> SafeString:
    return legend(overview.series, [n for _, n in overview.series_totals])


def chart_title(overview: ProjectOverview) -> str:
    unit = "day" if overview.time_range.by_day else "hour"
    return f"Calls per {unit}, {overview.time_range.name.lower()}"


def _describe_overview(overview: ProjectOverview) -> str:
    time_range = overview.time_range
    span = f"from {_minute(time_range.since)} to {_minute(time_range.until)} UTC"
    totals = overview.totals
    if not totals.requests:
        return f"No calls {span}."
    split = ", ".join(f"{text_isolated(s.label)} {n:,}" for s, n in overview.series_totals if n)
    busiest = overview.busiest
    assert busiest is not None
    unit = "day" if time_range.by_day else "hour"
    return (
        f"{calls_text(totals.requests)} {span} ({split}); {totals.errors:,} failed, "
        f"{totals.auth_failures:,} of them on authentication. Busiest {unit}: "
        f"{_bucket_name(busiest.start, by_day=time_range.by_day)}, "
        f"{calls_text(busiest.counts.requests)}."
    )


def _bucket_title(bucket: Bucket, series: Sequence[Series], by_day: bool) -> str:
    title = f"{_bucket_name(bucket.start, by_day=by_day)}: {calls_text(bucket.counts.requests)}"
    if len(series) > 1:
        split = ", ".join(
            f"{text_isolated(s.label)} {bucket.count(s):,}" for s in series if bucket.count(s)
        )
        title += f" ({split})"
    if bucket.counts.errors:
        title += f"; {bucket.counts.errors:,} failed"
    return title


# -- Numbers and times ----------------------------------------------------------------------


def nice_ceiling(value: int) -> int:
    """The smallest of 2, 4, 6, 8, 10, 20, 40… that is at least `value`: a round top for
    the scale whose half is a whole number too."""
    magnitude = 1
    while True:
        for step in (2, 4, 6, 8, 10):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


def compact(value: int) -> str:
    """1234 → 1.2k: tick labels stay narrow."""
    for limit, suffix in ((1_000_000, "M"), (1_000, "k")):
        if value >= limit:
            shown = f"{value / limit:.1f}".removesuffix(".0")
            return f"{shown}{suffix}" if value < limit * 10 else f"{value // limit}{suffix}"
    return str(value)


def calls_text(count: int) -> str:
    return f"{count:,} call" if count == 1 else f"{count:,} calls"


def crisp(y: float) -> str:
    """A 1px line on a pixel boundary, not smeared over two."""
    return f"{round(y) + 0.5:g}"


def svg_number(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


# What strftime's %a and %b say in the C locale, which a Django process runs in, looked up
# instead: strftime on an aware datetime took 25 µs a call, and a week's chart names 168
# hours in its bars' titles.
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _weekday(moment: datetime) -> str:
    return WEEKDAYS[moment.weekday()]


def _month(moment: datetime) -> str:
    return MONTHS[moment.month - 1]


def _day(moment: datetime) -> str:
    return f"{_weekday(moment)} {moment.day}"


def _bucket_name(start: datetime, *, by_day: bool) -> str:
    day = f"{_weekday(start)} {start.day} {_month(start)}"
    if by_day:
        return day
    return f"{day}, {start.hour:02d}:00–{(start.hour + 1) % 24:02d}:00 UTC"


def _hour(moment: datetime) -> str:
    return f"{moment.hour:02d}:00 on {_weekday(moment)} {moment.day} {_month(moment)}"


def _minute(moment: datetime) -> str:
    return (
        f"{moment.hour:02d}:{moment.minute:02d} on {_weekday(moment)} {moment.day} {_month(moment)}"
    )
