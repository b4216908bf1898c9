"""Hourly usage charts as server-rendered SVG: no chart library, no script, no inline style.

The Content-Security-Policy allows styles only from our stylesheet, so colours are SVG
presentation attributes (fill=, stroke=), which it does not govern and which the
stylesheet can still override (hover). Across, positions are percentages of the chart's
width; down, pixels. Bars stretch with the page while text keeps its size, with no
viewBox scaling and nothing measured in the browser. Tick labels on the left sit at
negative x: usage.css gives the chart a left margin for them.

Each chart is an image with a <title> and a <desc> that state its figures; every hour
with calls has a <title> of its own (the hover tooltip); the page beside it carries the
same figures as a table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from usage.key_usage import HourCounts, UsageWindow


@dataclass(frozen=True, slots=True)
class Series:
    """One stacked part of each bar: an attribute of HourCounts and how it is drawn."""

    attribute: str
    label: str
    colour: str


SERIES: tuple[Series, ...] = (
    Series("ok", "Succeeded", "#8580ee"),
    Series("errors", "Errors", "#e0a21b"),
    Series("revoked", "Revoked or expired key", "#c02a2a"),
)

HEIGHT = 172
TOP = 10  # the top gridline; its label needs the room above it
BASELINE = 142
LABEL_Y = 162
MIN_SEGMENT = 1.5  # px: one call among thousands still shows
GRID = "#e2e3e9"
AXIS = "#c9cbd5"
TEXT = "#5f6170"


def hour_chart(window: UsageWindow, *, chart_id: str) -> SafeString:
    """The window's calls per hour as stacked bars, oldest on the left."""
    hours = window.hours
    peak = max((h.requests for h in hours), default=0)
    top = nice_ceiling(peak)
    scale = (BASELINE - TOP) / top
    slot = 100 / len(hours)
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
    parts.extend(_time_axis(hours, slot))
    if peak == 0:
        parts.append(
            format_html(
                '<text x="50%" y="{}" text-anchor="middle" font-size="13" fill="{}">'
                "No calls in this window</text>",
                (TOP + BASELINE) // 2,
                TEXT,
            )
        )
    bar = slot * (0.72 if len(hours) <= 48 else 0.8)
    for index, hour in enumerate(hours):
        if hour.requests:
            parts.append(_bar(hour, x=index * slot, slot=slot, bar=bar, scale=scale))

    return format_html(
        '<svg class="chart" width="100%" height="{height}" role="img" '
        'aria-labelledby="{id}-title {id}-desc" overflow="visible" '
        'xmlns="http://www.w3.org/2000/svg">'
        '<title id="{id}-title">Calls per hour, {name}</title>'
        '<desc id="{id}-desc">{desc}</desc>{body}</svg>',
        height=HEIGHT,
        id=chart_id,
        name=window.name.lower(),
        desc=describe(window),
        body=mark_safe("".join(parts)),  # noqa: S308 - each part came from format_html
    )


def legend() -> SafeString:
    """The key to the bar colours, as a list beside the charts."""
    items = format_html_join(
        "",
        '<li><svg width="10" height="10" aria-hidden="true"><rect width="10" height="10" '
        'rx="2" fill="{}"/></svg>{}</li>',
        ((s.colour, s.label) for s in SERIES),
    )
    return format_html('<ul class="chart-legend" role="list">{}</ul>', items)


def describe(window: UsageWindow) -> str:
    """The chart in words, for its <desc>."""
    totals = window.totals
    span = f"from {_moment(window.start)} to {_moment(window.end)} UTC"
    if not totals.requests:
        return f"No calls {span}."
    busiest = max(window.hours, key=lambda h: h.requests)
    return (
        f"{calls_text(totals.requests)} {span}: {totals.ok:,} succeeded, {totals.errors:,} "
        f"failed with an error, {totals.revoked:,} used the key after it was revoked or "
        f"expired. Busiest hour: {_moment(busiest.start)}, {calls_text(busiest.requests)}."
    )


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


def _bar(hour: HourCounts, *, x: float, slot: float, bar: float, scale: float) -> str:
    # f-strings, not format_html: a week's chart has 168 of these, and every value in
    # them is a number we computed, a colour constant, or the escaped title.
    segments = []
    y = float(BASELINE)
    left = svg_number(x + (slot - bar) / 2)
    width = svg_number(bar)
    for series in SERIES:
        count = getattr(hour, series.attribute)
        if not count:
            continue
        height = max(count * scale, MIN_SEGMENT)
        y -= height
        segments.append(
            f'<rect x="{left}%" y="{svg_number(y)}" width="{width}%" height="{svg_number(height)}" '
            f'fill="{series.colour}"/>'
        )
    return (
        f'<g class="chart-hour"><title>{escape(_hour_title(hour))}</title>'
        f'<rect class="chart-hit" x="{svg_number(x)}%" y="{TOP}" width="{svg_number(slot)}%" '
        f'height="{BASELINE - TOP}" fill="#4f46e5" fill-opacity="0"/>{"".join(segments)}</g>'
    )


def _time_axis(hours: Sequence[HourCounts], slot: float) -> list[str]:
    """Every sixth hour under a day's chart; each midnight, with a line, under a week's."""
    labels = []
    daily = len(hours) > 48
    days = 0
    for index, hour in enumerate(hours):
        start = hour.start
        if daily and start.hour == 0 and 0 < index < len(hours) - 10:
            days += 1
            labels.append(
                format_html(
                    '<line x1="{x}%" x2="{x}%" y1="{top}" y2="{bottom}" stroke="{grid}" '
                    'stroke-dasharray="2 3"/>'
                    '<text{alternate} x="{x}%" y="{y}" dx="4" font-size="11" fill="{text}">'
                    "{label}</text>",
                    # On a narrow screen usage.css hides every other day's label.
                    alternate=mark_safe(' class="chart-tick-alt"' if days % 2 == 0 else ""),  # noqa: S308
                    x=svg_number(index * slot),
                    top=TOP,
                    bottom=BASELINE + 6,
                    grid=AXIS,
                    y=LABEL_Y,
                    text=TEXT,
                    label=f"{start:%a} {start.day}",
                )
            )
        elif not daily and start.hour % 6 == 0:
            labels.append(
                format_html(
                    '<text x="{}%" y="{}" text-anchor="middle" font-size="11" fill="{}">{}</text>',
                    svg_number((index + 0.5) * slot),
                    LABEL_Y,
                    TEXT,
                    f"{start:%H}:00",
                )
            )
    return labels


def _hour_title(hour: HourCounts) -> str:
    parts = [f"{hour.ok:,} succeeded"]
    if hour.errors:
        parts.append(f"{hour.errors:,} errors")
    if hour.revoked:
        parts.append(f"{hour.revoked:,} with the revoked or expired key")
    return (
        f"{hour.start:%a} {hour.start.day} {hour.start:%b}, {hour.start:%H}:00–"
        f"{(hour.start.hour + 1) % 24:02d}:00 UTC: {calls_text(hour.requests)} "
        f"({', '.join(parts)})"
    )


def _moment(moment: datetime) -> str:
    return f"{moment:%H}:00 on {moment:%a} {moment.day} {moment:%b}"


def calls_text(count: int) -> str:
    return f"{count:,} call" if count == 1 else f"{count:,} calls"


def crisp(y: float) -> str:
    """A 1px line on a pixel boundary, not smeared over two."""
    return f"{round(y) + 0.5:g}"


def svg_number(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")
