"""Raising a flag, or adding to the open one for the same finding (`_raise`), and what the
checks share in saying it: the calls' time span and busiest addresses, the keys' and
client tokens' names, and a name cut to fit a summary."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db.models import F

from alerts.detection.result import DetectionResult, _isolated
from alerts.models import Flag
from alerts.open_flags import add_or_open
from apikeys.models import ApiKey, ClientToken

SUMMARY_LENGTH = 300  # Flag.summary's max_length

# Makes a flag's summary and evidence from its open flag's evidence ({} for a new one).
type Merge = Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]


def _raise(
    result: DetectionResult,
    *,
    project_id: int,
    kind: str,
    severity: str,
    subject: str,
    summary: str,
    evidence: dict[str, Any],
    seen_from: datetime,
    seen_to: datetime,
    api_key_id: int | None = None,
    client_token_id: int | None = None,
    occurrences: int | Callable[[dict[str, Any]], int] = 1,
    merge: Merge | None = None,
) -> Flag | None:
    """Add to the open flag for this finding, or open one. In a savepoint of its own: a
    flag that cannot be stored is logged and skipped, and the other flags still are.
    `merge`, where given, makes the summary and evidence from the open flag's evidence
    (a finding that accumulates, like a key's new networks); otherwise the newest
    summary replaces it and the evidence is updated. `occurrences`: how many this adds,
    or a function of the open flag's evidence ({} for a new one) that says, where that
    depends on what the open flag counted already."""
    dedupe_key = f"{project_id}:{kind}:{api_key_id or '-'}:{client_token_id or '-'}:{subject}"
    if merge is not None:
        summary, evidence = merge({})
    summary = summary[:SUMMARY_LENGTH]
    added = occurrences if callable(occurrences) else lambda _: occurrences

    def add_to_open() -> Flag | None:
        flag = Flag.objects.select_for_update().filter(dedupe_key=dedupe_key).open().first()
        if flag is None:
            return None
        flag.occurrences = F("occurrences") + added(flag.evidence)
        flag.last_seen = max(flag.last_seen, seen_to)
        if merge is not None:
            merged_summary, flag.evidence = merge(flag.evidence)
            flag.summary = merged_summary[:SUMMARY_LENGTH]
        else:
            flag.summary = summary
            flag.evidence = {**flag.evidence, **evidence}
        flag.save(update_fields=["occurrences", "last_seen", "summary", "evidence"])
        flag.refresh_from_db(fields=["occurrences"])
        result.flags_updated += 1
        return flag

    def open_new() -> Flag:
        flag = Flag.objects.create(
            project_id=project_id,
            api_key_id=api_key_id,
            client_token_id=client_token_id,
            kind=kind,
            severity=severity,
            dedupe_key=dedupe_key,
            summary=summary,
            evidence=evidence,
            occurrences=added({}),
            first_seen=seen_from,
            last_seen=seen_to,
        )
        result.flags_raised += 1
        result.raised.append(flag)
        return flag

    # Another detector run may open it at the same moment: add_or_open adds to that one.
    # A failure is logged below, and the run goes on.
    stored: Flag | None = _isolated(
        f"flag {dedupe_key}", lambda: add_or_open(add_to_open, open_new), result
    )
    return stored


def _span(rows: list[dict[str, Any]]) -> tuple[datetime, datetime]:
    times = [r["created_at"] for r in rows]
    return min(times), max(times)


def _ips(rows: list[dict[str, Any]], most: int = 10) -> list[str]:
    counted: dict[str, int] = defaultdict(int)
    for r in rows:
        if r["ip"]:
            counted[r["ip"]] += 1
    return [ip for ip, _ in sorted(counted.items(), key=lambda kv: -kv[1])[:most]]


def _names(tokens: Any) -> dict[tuple[int | None, int | None], str]:
    key_ids = {k for _, k, c in tokens if k}
    ct_ids = {c for _, k, c in tokens if c}
    names: dict[tuple[int | None, int | None], str] = {}
    for key in ApiKey.objects.filter(pk__in=key_ids).only("name", "hint"):
        names[(key.pk, None)] = f"Key “{key.name}” ({key.hint})"
    for ct in ClientToken.objects.filter(pk__in=ct_ids).only("public_id"):
        names[(None, ct.pk)] = f"Client token {ct.public_id}"
    return names


def _name_within(name: str, most: int) -> str:
    """A key as _names writes it (Key “name” (hint)) in at most `most` characters where
    it can be: the name in its quotes cut short with "…", the hint kept (which key)."""
    if len(name) <= most:
        return name
    opening, closing = name.find("“") + 1, name.rfind("”")
    if opening == 0 or closing < opening:
        return f"{name[: max(1, most - 1)]}…"
    kept = max(1, closing - opening - (len(name) - most) - 1)
    return f"{name[:opening]}{name[opening : opening + kept]}…{name[closing:]}"
