"""signs_together (high): two of new_network, new_agent and volume_spike on one key within
TOGETHER_WITHIN of each other, none of them high; checked after each of those is raised."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

from alerts.detection.flags import SUMMARY_LENGTH, _name_within, _names, _raise
from alerts.detection.result import DetectionResult, _isolated
from alerts.models import Flag, evidence_texts, is_count

# Signs that a key's own use changed. Each alone may be ordinary (a new server, a new
# feature, a busy day): medium, on the page, emailed to nobody. Two kinds of them on one key
# within TOGETHER_WITHIN of each other are a strong sign of a leak: one high alert says so.
TOGETHER_KINDS: tuple[str, ...] = (
    Flag.Kind.NEW_NETWORK,
    Flag.Kind.NEW_AGENT,
    Flag.Kind.VOLUME_SPIKE,
)
TOGETHER_WITHIN = timedelta(hours=1)
TOGETHER_SAID: dict[str, str] = {
    Flag.Kind.NEW_NETWORK: "was used from a new network",
    Flag.Kind.NEW_AGENT: "called agents it had not called",
    Flag.Kind.VOLUME_SPIKE: "made calls far over its usual",
}


def _signs_together(flag: Flag, result: DetectionResult) -> None:
    """After `flag`, one of TOGETHER_KINDS, was raised or added to: if its key has another
    of those kinds open, seen within TOGETHER_WITHIN of it, raise (or add a kind to) the
    key's one open signs_together alert, high, so it is emailed and sent to webhooks that
    take only high alerts. The signs stay medium: each says what it is. Nothing is raised
    where one of them is high already (its people hear of that one), nor again while the
    open one names the same kinds (the leak going on is no news): one email per key."""
    if flag.api_key_id is None:
        return

    def check() -> None:
        # `flag` itself as stored: its severity may have changed since it was read (a new
        # network alert turned high by _new_networks_escalate).
        signs = list(
            Flag.objects.open()
            .filter(api_key_id=flag.api_key_id, kind__in=TOGETHER_KINDS)
            .filter(
                last_seen__gte=flag.first_seen - TOGETHER_WITHIN,
                first_seen__lte=flag.last_seen + TOGETHER_WITHIN,
            )
            .only("pk", "kind", "severity", "first_seen", "last_seen")
        )
        kinds = [kind for kind in TOGETHER_KINDS if any(sign.kind == kind for sign in signs)]
        if len(kinds) < 2 or any(sign.severity == Flag.Severity.HIGH for sign in signs):
            return
        said = (
            Flag.objects.open()
            .filter(api_key_id=flag.api_key_id, kind=Flag.Kind.SIGNS_TOGETHER)
            .values_list("evidence", flat=True)
            .first()
        )
        # (Read as the detector writes it, or as naming none: see _signs_together_merge.)
        said_kinds = evidence_texts(said, "kinds") if isinstance(said, dict) else []
        if said is not None and set(kinds) <= set(said_kinds):
            return
        name = _names({(flag.project_id, flag.api_key_id, None)}).get(
            (flag.api_key_id, None), "A key"
        )
        lasts = [sign.last_seen for sign in signs]
        _raise(
            result,
            project_id=flag.project_id,
            api_key_id=flag.api_key_id,
            kind=Flag.Kind.SIGNS_TOGETHER,
            severity=Flag.Severity.HIGH,
            subject="",
            summary="",
            evidence={},
            seen_from=min(lasts),
            seen_to=max(lasts),
            merge=partial(_signs_together_merge, name, kinds, [sign.pk for sign in signs]),
        )

    _isolated(f"signs together of key {flag.api_key_id}", check, result)


def _signs_together_merge(
    name: str, kinds: list[str], alerts: list[int], old: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The key's open signs_together alert with `kinds` (and the alerts that showed them)
    added: which kinds, in TOGETHER_KINDS' order, and the ids of their alerts."""
    # Each read as the detector writes it, or as none: a row edited by hand with a number
    # there, or ids that are not all numbers, raised, which failed the key's check on
    # every run.
    old_kinds = evidence_texts(old, "kinds")
    kinds = [kind for kind in TOGETHER_KINDS if kind in kinds or kind in old_kinds]
    listed = old.get("alerts")
    old_ids = [i for i in listed if is_count(i)] if isinstance(listed, list) else []
    ids = sorted({*old_ids, *alerts})[-10:]
    said = [TOGETHER_SAID[kind] for kind in kinds]
    what = f"{', '.join(said[:-1])} and {said[-1]}"
    tail = f" {what} within the hour: it may have leaked. If nothing of yours did this, revoke it."
    return f"{_name_within(name, SUMMARY_LENGTH - len(tail))}{tail}", {
        "kinds": kinds,
        "alerts": ids,
    }
