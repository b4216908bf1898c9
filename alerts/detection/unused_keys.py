"""unused_key (low): an active key unused for its project's number of days (UNUSED_AFTER);
checked once a run over every project's keys, not over the batch's rows."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from functools import partial

from django.db.models import F, Max, Q

from alerts.detection.flags import _raise
from alerts.detection.result import DetectionResult, _isolated
from alerts.detection.thresholds import _OFF_AS_TEXT, _kinds_off
from alerts.models import AlertRules, Flag
from alerts.rules import UNUSED_AFTER
from apikeys.models import ApiKey
from usage.models import Outcome, UsageRecord


def _unused_since(cutoff: datetime) -> Q:
    return Q(last_used_at__lt=cutoff) | Q(last_used_at__isnull=True, created_at__lt=cutoff)


def _unused_keys(now: datetime, result: DetectionResult) -> None:
    """Over every project's keys: the projects with rules of their own for it are grouped
    by their number of days, so the query has a term per distinct value, not per project."""
    # A row per project that saved rules: few, and read once a run (a JSON "contains"
    # is not there on SQLite, so the kinds turned off are read here).
    tuned = AlertRules.objects.values("project_id", "unused_days", off_text=_OFF_AS_TEXT)
    by_days: dict[timedelta, list[int]] = defaultdict(list)
    special: list[int] = []
    for row in tuned:
        turned_off = Flag.Kind.UNUSED_KEY in _kinds_off(row["project_id"], row["off_text"])
        if row["unused_days"] is None and not turned_off:
            continue
        special.append(row["project_id"])
        if not turned_off:
            days = row["unused_days"]
            by_days[timedelta(days=days) if days else UNUSED_AFTER].append(row["project_id"])
    unused = _unused_since(now - UNUSED_AFTER) & ~Q(project_id__in=special)
    for after, project_ids in by_days.items():
        unused |= _unused_since(now - after) & Q(project_id__in=project_ids)
    stale = ApiKey.objects.active().filter(
        unused,
        suspended_at__isnull=True,  # quiet because it is suspended: nothing to point out
    )
    cutoffs = {p: now - after for after, ps in by_days.items() for p in ps}
    # Flagged already for this quiet spell: a flag whose spell starts at (or after) the
    # key's last use. A key used again after its flag, then left unused again, is flagged
    # again.
    already = set(
        Flag.objects.filter(kind=Flag.Kind.UNUSED_KEY, api_key__in=stale)
        .filter(
            Q(api_key__last_used_at__isnull=True) | Q(first_seen__gte=F("api_key__last_used_at"))
        )
        .values_list("api_key_id", flat=True)
    )
    # Only what the check reads: a column it never looks at (the key's scopes, its allowed
    # networks) holding JSON Python cannot read back stopped the check for every project.
    checked = stale.exclude(pk__in=already).only(
        "project_id", "name", "hint", "created_at", "last_used_at"
    )
    for key in checked:
        # Each key on its own: one whose query runs out of time is not every project's loss.
        _isolated(f"unused key {key.pk}", partial(_unused_key, key, now, cutoffs, result), result)


def _unused_key(
    key: ApiKey, now: datetime, cutoffs: dict[int, datetime], result: DetectionResult
) -> None:
    # "Last used" is marked at most once a minute, and not while another transaction
    # holds the key's row (usage/writer.py): the log, while it still holds them, has the
    # key's own successes after the mark, or since its creation if it was never marked.
    later = UsageRecord.objects.filter(
        api_key_id=key.pk,
        client_token_id__isnull=True,
        outcome=Outcome.OK,
        created_at__gt=key.last_used_at or key.created_at,
    ).aggregate(last=Max("created_at"))["last"]
    if later is not None and later >= cutoffs.get(key.project_id, now - UNUSED_AFTER):
        return
    last_used = later or key.last_used_at
    since = last_used or key.created_at
    _raise(
        result,
        project_id=key.project_id,
        api_key_id=key.pk,
        kind=Flag.Kind.UNUSED_KEY,
        severity=Flag.Severity.LOW,
        subject="",
        summary=f"Key “{key.name}” ({key.hint}) has not been used since {since:%-d %b %Y}. "
        "If nothing needs it, revoke it: an unused key is only a risk.",
        evidence={"last_used": last_used.isoformat() if last_used else None},
        seen_from=since,
        seen_to=now,
    )
