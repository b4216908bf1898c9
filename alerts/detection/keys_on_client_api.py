"""key_on_client_api (high): an API key was sent to the Client API (`/client/…`), which only
browsers call: the key is in a page's code, where every visitor can read it. The API
refuses it (403 insufficient_permissions) before looking it up, and logs the call on the
key (api/authentication.py)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from django.db.models import Q

from alerts.detection.flags import SUMMARY_LENGTH, _ips, _name_within, _names, _raise, _span
from alerts.detection.result import DetectionResult
from alerts.detection.thresholds import Rules
from alerts.models import Flag
from apikeys.models import ApiKey
from usage.models import on_the_client_api


def on_client_api(row: dict[str, Any]) -> bool:
    """A key's own call to the Client API, /client itself included: every one is refused
    (a 403, or a wrong path's 404, a wrong method's 405), and every one is a leak (a client
    token's calls there carry the token, and are not the key's own)."""
    return bool(row["api_key_id"] and not row["client_token_id"] and on_the_client_api(row["path"]))


def _keys_on_client_api(
    rows: list[dict[str, Any]], now: datetime, result: DetectionResult, rules: Rules
) -> None:
    """One open alert per key, counting its calls to the Client API and their addresses."""
    by_key: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if on_client_api(r):
            by_key[(r["project_id"], r["api_key_id"])].append(r)
    names = _names({(p, k, None) for p, k in by_key})
    # A revoked or expired key cannot be rolled: its alert says what is left to do.
    ended = set(
        ApiKey.objects.filter(pk__in={k for _, k in by_key})
        .filter(Q(revoked_at__isnull=False) | Q(expires_at__lte=now))
        .values_list("pk", flat=True)
    )
    for (project_id, key_id), calls in by_key.items():
        first, last = _span(calls)
        ips = _ips(calls)
        _raise(
            result,
            project_id=project_id,
            api_key_id=key_id,
            kind=Flag.Kind.KEY_ON_CLIENT_API,
            severity=Flag.Severity.HIGH,
            subject="",
            summary=_summary(names.get((key_id, None), "A key"), ips, ended=key_id in ended),
            evidence={"ips": ips, "since": first.isoformat()},
            seen_from=first,
            seen_to=last,
            occurrences=len(calls),
        )


def _summary(name: str, ips: list[str], *, ended: bool = False) -> str:
    """What the alert says, within SUMMARY_LENGTH: fewer addresses named, then the key's
    name cut short, where they would not fit (a 100-character name and three IPv6
    addresses do not), so that its advice is never cut off, nor an address cut into
    one the alert never saw. `ended`: the key is revoked or expired, and is not to be
    rolled (it cannot be) but taken out of the page."""
    advice = (
        " was sent to the Client API, as a browser's code sends it: anyone who loads that "
        "page can read the key. Roll it, and mint client tokens on your server instead"
    )
    if ended:
        advice = (
            " was sent to the Client API, as a browser's code sends it. It no longer works: "
            "take it out of that page's code, and mint client tokens on your server instead"
        )
    for named in range(min(3, len(ips)), 0, -1):
        what = f"{advice} (from {', '.join(ips[:named])})."
        if len(name) + len(what) <= SUMMARY_LENGTH:
            return f"{name}{what}"
    what = f"{advice} (from {ips[0]})." if ips else f"{advice} (from unknown addresses)."
    return f"{_name_within(name, SUMMARY_LENGTH - len(what))}{what}"
