"""volume_spike (medium): a key's calls in an hour far over its trailing week's hourly
average and over its average at that hour of the day; one open alert per key counts the
hours over its usual."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db.models import Max, Min, Sum

from alerts.detection.flags import SUMMARY_LENGTH, _name_within, _names, _raise
from alerts.detection.result import DetectionResult, _isolated
from alerts.detection.signs_together import _signs_together
from alerts.detection.thresholds import Rules
from alerts.models import Flag, evidence_text, evidence_texts, is_count
from alerts.rules import Thresholds
from usage.models import UsageHour, UsageRecord

SPIKE_BASELINE = timedelta(days=7)
SPIKE_MIN_HISTORY = timedelta(days=1)
# The hours an open spike alert keeps (its count of hours goes on past them).
SPIKE_HOURS_LISTED = 168


def _volume_spikes(
    rows: list[dict[str, Any]], now: datetime, result: DetectionResult, rules: Rules
) -> None:
    hours: set[tuple[int, int, datetime]] = set()
    for r in rows:
        if r["api_key_id"] and rules[r["project_id"]].on(Flag.Kind.VOLUME_SPIKE):
            hour = r["created_at"].replace(minute=0, second=0, microsecond=0)
            hours.add((r["project_id"], r["api_key_id"], hour))
    for project_id, key_id, hour in hours:
        spike = partial(_volume_spike, project_id, key_id, hour, now, rules[project_id], result)
        _isolated(f"volume spike of key {key_id}", spike, result)


def _volume_spike(
    project_id: int,
    key_id: int,
    hour: datetime,
    now: datetime,
    rules: Thresholds,
    result: DetectionResult,
) -> None:
    history = UsageHour.objects.filter(
        api_key_id=key_id, hour__gte=hour - SPIKE_BASELINE, hour__lt=hour
    )
    stats = history.aggregate(total=Sum("requests"))
    first_hour = history.order_by("hour").values_list("hour", flat=True).first()
    if first_hour is None or hour - first_hour < SPIKE_MIN_HISTORY:
        return  # a new key has no baseline to spike above
    span_hours = max(1, int((hour - first_hour).total_seconds() // 3600))
    average = (stats["total"] or 0) / span_hours
    at_this_hour = _same_hour_average(key_id, hour, first_hour)
    # A nightly job's hour is busy every night: ordinary for that hour of the day, however
    # far above the key's average over all hours.
    baseline = max(average, at_this_hour)
    current = (
        UsageHour.objects.filter(api_key_id=key_id, hour=hour)
        .values_list("requests", flat=True)
        .first()
        or 0
    )
    if current < max(rules.spike_min_calls, rules.spike_factor * baseline):
        return
    calls = UsageRecord.objects.filter(
        api_key_id=key_id, created_at__gte=hour, created_at__lt=hour + timedelta(hours=1)
    ).aggregate(first=Min("created_at"), last=Max("created_at"))
    name = _names({(project_id, key_id, None)}).get((key_id, None), "A key")
    figures = (
        f"made {current} calls in the hour from {hour:%H:%M} UTC, "
        f"{current / baseline if baseline else current:.0f}× its usual {baseline:.1f} "
        f"({average:.1f} an hour on average, {at_this_hour:.1f} at this hour of the day)."
    )
    this_hour = {
        "count": current,
        "baseline_per_hour": round(average, 2),
        "baseline_this_hour": round(at_this_hour, 2),
        "since": hour.isoformat(),
        "until": (hour + timedelta(hours=1)).isoformat(),
    }
    # One alert per key while it is open: abuse that lasts hours is one incident.
    flag = _raise(
        result,
        project_id=project_id,
        api_key_id=key_id,
        kind=Flag.Kind.VOLUME_SPIKE,
        severity=Flag.Severity.MEDIUM,
        subject="",
        summary="",
        evidence={},
        seen_from=calls["first"] or hour,
        seen_to=calls["last"] or min(now, hour + timedelta(hours=1)),
        merge=partial(_volume_spike_merge, name, figures, this_hour),
    )
    if flag is not None:
        _signs_together(flag, result)


def _volume_spike_merge(
    name: str, figures: str, this_hour: dict[str, Any], old: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """A key's open spike alert with one more hour over its usual (or the same hour, seen
    again with more calls): the latest hour's figures, since when, and how many hours."""
    # Each read as the detector writes it, or as none: a row edited by hand with a number
    # where a list or a time was (or a time that is none) raised, which failed the key's
    # check on every run.
    hours = evidence_texts(old, "hour_list")
    counted, peak = old.get("hours"), old.get("peak")
    count = counted if is_count(counted) else len(hours)
    if this_hour["since"] not in hours:
        hours.append(this_hour["since"])
        count += 1
    since = evidence_text(old, "since", this_hour["since"])
    try:
        started = datetime.fromisoformat(since)
    except ValueError:
        since, started = this_hour["since"], datetime.fromisoformat(this_hour["since"])
    evidence = {
        **this_hour,
        "since": since,
        "peak": max(peak if is_count(peak) else 0, this_hour["count"]),
        "hours": count,
        "hour_list": hours[-SPIKE_HOURS_LISTED:],
    }
    if count == 1:
        return _volume_spike_summary(name, figures), evidence
    hours_over = f"Over its usual in {count} hours since {started:%-d %b, %H:%M} UTC."
    return _volume_spike_summary(name, f"{figures} {hours_over}"), evidence


def _volume_spike_summary(name: str, figures: str) -> str:
    """What a volume-spike alert says, within SUMMARY_LENGTH: the key's name cut short
    where the whole would not fit, so the figures and since when are never cut."""
    return f"{_name_within(name, SUMMARY_LENGTH - len(figures) - 1)} {figures}"


def _same_hour_average(key_id: int, hour: datetime, first_hour: datetime) -> float:
    """The key's calls in the same hour of the day, on average over the baseline's days
    (those since its first call)."""
    days = [
        hour - timedelta(days=d)
        for d in range(1, SPIKE_BASELINE.days + 1)
        if hour - timedelta(days=d) >= first_hour
    ]
    if not days:
        return 0.0
    total = UsageHour.objects.filter(api_key_id=key_id, hour__in=days).aggregate(
        total=Sum("requests")
    )["total"]
    return (total or 0) / len(days)
