"""blocked_network (high): a key's network allowlist refused calls (403 ip_not_allowed)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from alerts.detection.flags import _ips, _names, _raise, _span
from alerts.detection.result import DetectionResult
from alerts.detection.thresholds import Rules
from alerts.models import Flag

# Refused by the key's own network allowlist: its own alert, not an auth burst's.
IP_NOT_ALLOWED = "ip_not_allowed"


def _blocked_networks(
    rows: list[dict[str, Any]], now: datetime, result: DetectionResult, rules: Rules
) -> None:
    """Calls a key's network allowlist refused: the key's secret is held by someone
    outside its networks (or the list misses one of the project's own)."""
    by_key: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["error_code"] == IP_NOT_ALLOWED and r["api_key_id"] and not r["client_token_id"]:
            by_key[(r["project_id"], r["api_key_id"])].append(r)
    names = _names({(p, k, None) for p, k in by_key})
    for (project_id, key_id), calls in by_key.items():
        first, last = _span(calls)
        ips = _ips(calls)
        _raise(
            result,
            project_id=project_id,
            api_key_id=key_id,
            kind=Flag.Kind.BLOCKED_NETWORK,
            severity=Flag.Severity.HIGH,
            subject="",
            summary=f"{names.get((key_id, None), 'A key')} was used from outside its allowed "
            f"networks and refused (from {', '.join(ips[:3]) or 'unknown addresses'}).",
            evidence={"ips": ips, "error_code": IP_NOT_ALLOWED, "since": first.isoformat()},
            seen_from=first,
            seen_to=last,
            occurrences=len(calls),
        )
