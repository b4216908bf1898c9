"""auth_failure_burst (high): a project's number (AUTH_BURST_THRESHOLD, 20) or more
auth/permission failures for one key within its window (AUTH_BURST_WINDOW, 10 minutes),
counted in the log itself; a suspension's or an allowlist's own refusals, and a key's calls
to the Client API, which have alerts of their own, are not counted."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db.models import Count, Max, Min, Q

from alerts.detection.blocked_networks import IP_NOT_ALLOWED
from alerts.detection.flags import _names, _raise
from alerts.detection.keys_on_client_api import on_client_api
from alerts.detection.result import DetectionResult, _isolated
from alerts.detection.thresholds import Rules
from alerts.models import Flag
from alerts.rules import Thresholds
from usage.models import ON_THE_CLIENT_API, Outcome, UsageRecord

# The error code of a call refused because its key is suspended (api/errors.py).
SUSPENDED = "suspended_api_key"


def _auth_bursts(
    rows: list[dict[str, Any]], now: datetime, result: DetectionResult, rules: Rules
) -> None:
    """Counted in the log itself over the window ending at each key's latest failure, so a
    burst split across batches is still seen whole."""
    latest: dict[tuple[int, int], datetime] = {}
    for r in rows:
        # A suspended key refused is the project's own doing, not someone probing.
        if r["error_code"] in (SUSPENDED, IP_NOT_ALLOWED) or on_client_api(r):
            continue
        if (
            r["outcome"] == Outcome.AUTH_FAILURE
            and r["api_key_id"]
            and rules[r["project_id"]].on(Flag.Kind.AUTH_FAILURE_BURST)
        ):
            token = (r["project_id"], r["api_key_id"])
            latest[token] = max(latest.get(token, r["created_at"]), r["created_at"])
    for (project_id, key_id), until in latest.items():
        burst = partial(_auth_burst, project_id, key_id, until, rules[project_id], result)
        _isolated(f"auth bursts of key {key_id}", burst, result)


def _auth_burst(
    project_id: int, key_id: int, until: datetime, rules: Thresholds, result: DetectionResult
) -> None:
    window, threshold = rules.burst_window, rules.burst_failures
    since = until - window
    failures = UsageRecord.objects.filter(
        api_key_id=key_id,
        created_at__gt=since,
        created_at__lte=until,
        outcome=Outcome.AUTH_FAILURE,
    ).exclude(error_code__in=(SUSPENDED, IP_NOT_ALLOWED))
    # A key's own calls to the Client API have their own alert (keys_on_client_api).
    failures = failures.exclude(Q(client_token__isnull=True) & ON_THE_CLIENT_API)
    span = failures.aggregate(n=Count("id"), first=Min("created_at"), last=Max("created_at"))
    count = span["n"]
    if count < threshold:
        return
    ips = list(
        failures.values("ip")
        .annotate(n=Count("id"))
        .order_by("-n")
        .values_list("ip", flat=True)[:10]
    )
    name = _names({(project_id, key_id, None)}).get((key_id, None), "A key")
    _raise(
        result,
        project_id=project_id,
        api_key_id=key_id,
        kind=Flag.Kind.AUTH_FAILURE_BURST,
        severity=Flag.Severity.HIGH,
        subject="",
        summary=f"{name} was refused {count} times in {_minutes(window)} minutes "
        "for missing permissions or access.",
        evidence={
            "count": count,
            "ips": [ip for ip in ips if ip],
            "outcome": Outcome.AUTH_FAILURE,
            "since": since.isoformat(),
            "until": until.isoformat(),
        },
        # The first and the last refused call themselves, not the window's edges.
        seen_from=span["first"],
        seen_to=span["last"],
    )


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)
