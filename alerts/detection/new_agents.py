"""new_agent (medium): a key succeeds with an agent it has never called, after the
new-network learning period (and off with it); one open alert per key lists them."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from alerts.detection.flags import SUMMARY_LENGTH, _names, _raise, _span
from alerts.detection.new_networks import _firsts
from alerts.detection.result import DetectionResult
from alerts.detection.signs_together import _signs_together
from alerts.detection.thresholds import Rules
from alerts.learnt import learnt_before
from alerts.models import Flag, KeyAgent, evidence_text, evidence_texts, is_count
from usage.models import Outcome


def _new_agents(
    rows: list[dict[str, Any]], now: datetime, result: DetectionResult, rules: Rules
) -> None:
    """A key succeeding with an agent it has not called before, after its learning period
    (the new-network one: both learn what the key's own servers do, and both are off
    together). A leaked key is often used for what its owner never does."""
    direct = [
        r for r in rows
        if r["outcome"] == Outcome.OK and r["api_key_id"] and r["agent"]
        and not r["client_token_id"]
    ]  # fmt: skip
    if not direct:
        return
    known, first_uses, _ = learnt_before(
        KeyAgent,
        owner="api_key_id",
        value="agent",
        owner_ids={r["api_key_id"] for r in direct},
        values={str(r["agent"]) for r in direct},
    )
    learnt, findings, _ = _firsts(direct, lambda r: str(r["agent"]), known, first_uses, rules)
    KeyAgent.objects.bulk_create(
        [KeyAgent(api_key_id=k, agent=a, first_seen=at) for k, a, at in learnt],
        ignore_conflicts=True,
    )
    names = _names({(p, k, None) for p, k in findings})
    for (project_id, key_id), firsts in findings.items():
        first, last = _span(list(firsts.values()))
        flag = _raise(
            result,
            project_id=project_id,
            api_key_id=key_id,
            kind=Flag.Kind.NEW_AGENT,
            severity=Flag.Severity.MEDIUM,
            subject="",
            summary="",
            evidence={},
            seen_from=first,
            seen_to=last,
            occurrences=len(firsts),
            merge=partial(
                _new_agents_merge, names.get((key_id, None), "A key"), list(firsts), first
            ),
        )
        if flag is not None:
            _signs_together(flag, result)


AGENTS_LISTED = 20


def _new_agents_merge(
    name: str, agents: list[str], first: datetime, old: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """A key's open new-agent alert with `agents` added: counted, the first listed."""
    listed = evidence_texts(old, "agents")  # none if no list (edited by hand): as networks'
    counted = old.get("count")  # no whole number (edited by hand): as none, as networks'
    count = (counted if is_count(counted) else len(listed)) + len(agents)
    listed = [*listed, *[a for a in agents if a not in listed]][:AGENTS_LISTED]
    since = evidence_text(old, "since", first.isoformat())
    evidence = {"agents": listed, "count": count, "since": since}
    return _new_agents_summary(name, listed, count), evidence


AGENTS_NAMED = 3  # in the summary; the alert's evidence lists AGENTS_LISTED


def _new_agents_summary(name: str, listed: list[str], count: int) -> str:
    """What a new-agent alert says, within SUMMARY_LENGTH: the first few agents by name,
    fewer where long names would not fit, so the sentence and its advice are never cut."""
    what = "an agent" if count == 1 else f"{count} agents"
    for named in range(min(AGENTS_NAMED, len(listed)), 0, -1):
        more = "…" if count > named else ""
        summary = (
            f"{name} called {what} it had not called before: {', '.join(listed[:named])}"
            f"{more}. If nothing of yours does this, it may have leaked."
        )
        if len(summary) <= SUMMARY_LENGTH:
            return summary
    advice = "If nothing of yours does this, it may have leaked."
    return f"{name} called {what} it had not called before. {advice}"
