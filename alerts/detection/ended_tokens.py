"""ended_token_used (high): a revoked or expired key, or an ended client token, is tried;
a rolled key's replaced secret tried is said as such."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from alerts.detection.flags import _ips, _names, _raise, _span
from alerts.detection.result import DetectionResult
from alerts.detection.thresholds import Rules
from alerts.models import Flag
from apikeys.models import ApiKey, TokenStatus
from usage.models import Outcome


def _ended_tokens(
    rows: list[dict[str, Any]], now: datetime, result: DetectionResult, rules: Rules
) -> None:
    by_token: dict[tuple[int, int | None, int | None], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        # A personal access token's ended use is its person's matter, not a project's.
        if r["outcome"] == Outcome.REVOKED_KEY and (r["api_key_id"] or r["client_token_id"]):
            # A client token's refusal is its own finding, even when its key is the cause;
            # it names the key that minted it (none for a PAT's), whose log holds its calls
            # and whose suspend, roll and revoke the alert offers.
            token = (r["project_id"], r["api_key_id"], r["client_token_id"])
            by_token[token].append(r)
    names = _names(by_token)
    keys = ApiKey.objects.only(*_ROLLED_KEY_READ).in_bulk(
        {k for _, k, c in by_token if k and not c}
    )
    for (project_id, key_id, ct_id), attempts in by_token.items():
        first, last = _span(attempts)
        what = names.get((None, ct_id) if ct_id else (key_id, None), "A token")
        ips = _ips(attempts)
        from_where = f"(from {', '.join(ips[:3]) or 'unknown addresses'})"
        summary = f"{what} no longer works but is still being tried {from_where}."
        key = keys.get(key_id) if key_id and not ct_id else None
        if key is not None and key.rolled_at:
            summary = _old_secret_tried(key, last, from_where) or summary
        _raise(
            result,
            project_id=project_id,
            api_key_id=key_id,
            client_token_id=ct_id,
            kind=Flag.Kind.ENDED_TOKEN_USED,
            severity=Flag.Severity.HIGH,
            subject="",
            summary=summary,
            evidence={"ips": ips, "outcome": Outcome.REVOKED_KEY, "since": first.isoformat()},
            seen_from=first,
            seen_to=last,
            occurrences=len(attempts),
        )


# What _old_secret_tried reads of a key, and no more: a column it never looks at (the
# key's agent scopes, its allowed networks) holding JSON Python cannot read back (put there
# by hand, a restore) failed the ended-token check for every project in the batch.
_ROLLED_KEY_READ = (
    "name",
    "hint",
    "previous_hint",
    "rolled_at",
    "revoked_at",
    "expires_at",
    "suspended_at",
)


def _old_secret_tried(key: ApiKey, last: datetime, from_where: str) -> str | None:
    """What to say of a rolled key refused while it works (neither revoked nor expired at
    the last attempt): the secret tried is one it replaced. Naming the key by its current
    hint would say the working secret stopped. None if the key itself had ended."""
    if key.status_at(last) in (TokenStatus.REVOKED, TokenStatus.EXPIRED):
        return None
    return (
        f"A secret that key “{key.name}” replaced when rolled (the last: {key.previous_hint}) "
        f"is still being tried {from_where}; its current secret ({key.hint}) still works."
    )
