"""What a delivery says: the generic JSON event, or a Slack message built from it.

The event is built once, when the delivery is enqueued, and stored; a retry sends the same
bytes. Nothing here holds a secret: a key is named by its name and hint only.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.urls import reverse

from accounts.models import Project
from alerts.detection.flags import SUMMARY_LENGTH
from alerts.models import Flag
from core.mail import one_line


def event_id_new() -> str:
    return "evt_" + secrets.token_hex(12)


def iso_z(moment: datetime) -> str:
    at = moment.astimezone(UTC)
    # The year by hand: strftime's %Y writes year 1 as "1", which is no RFC 3339 year.
    return f"{at.year:04d}{at:-%m-%dT%H:%M:%SZ}"


def alerts_url(project: Project, flag_id: int | None = None) -> str:
    url = settings.DASHBOARD_URL.rstrip("/") + reverse(
        "alerts:flag_list", kwargs={"slug": project.slug}
    )
    return f"{url}#flag-{flag_id}" if flag_id else url


def _project(project: Project) -> dict[str, str]:
    return {"slug": project.slug, "name": project.name}


def alert_event(*, event_id: str, flag: Flag, created_at: datetime) -> dict[str, Any]:
    key: dict[str, str] | None = None
    if flag.api_key is not None:
        key = {"type": "api_key", "name": flag.api_key.name, "hint": flag.api_key.hint}
    elif flag.client_token is not None:
        key = {
            "type": "client_token",
            "name": flag.client_token.public_id,
            "hint": flag.client_token.hint,
        }
    return {
        "id": event_id,
        "type": "alert.raised",
        "createdAt": iso_z(created_at),
        "project": _project(flag.project),
        "alert": {
            "id": flag.pk,
            "kind": flag.kind,
            "severity": flag.severity,
            "title": flag.get_kind_display(),
            "summary": flag.summary,
            "key": key,
            "firstSeen": iso_z(flag.first_seen),
            "lastSeen": iso_z(flag.last_seen),
            "occurrences": flag.occurrences,
            # A new-network alert's occurrences are the networks it counts, a lower bound
            # once the detector passed over calls (the Alerts page's "× 12 or more").
            "occurrencesAtLeast": flag.kind == Flag.Kind.NEW_NETWORK
            and bool(flag.evidence.get("at_least")),
            "url": alerts_url(flag.project, flag.pk),
        },
    }


def test_event(*, event_id: str, project: Project, created_at: datetime) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "webhook.test",
        "createdAt": iso_z(created_at),
        "project": _project(project),
        "alert": None,
    }


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed: compact, keys in a fixed order, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def mrkdwn_escape(text: str) -> str:
    """Slack's three control characters, as Slack asks: a customer's key named
    `<!channel>` must not ping a whole channel, nor `<https://evil|here>` make a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_text(text: str) -> str:
    """A customer's text (a name, or the summary holding one) as a Slack message shows it:
    on one line, as in the alert mail (core.mail.one_line), so that a name saved with a
    line break writes no line of its own into the channel nor ends the bold title, and
    one saved with a direction override reorders nothing; then escaped. The generic
    event keeps the names as stored: it is data, for a program to read."""
    return mrkdwn_escape(one_line(text, limit=SUMMARY_LENGTH))


def slack_message(event: dict[str, Any]) -> dict[str, Any]:
    """An incoming-webhook message (`text` for notifications, `blocks` for the channel)."""
    project = _slack_text(event["project"]["name"])
    alert = event.get("alert")
    if alert is None:
        text = f"Test from Reminix: alerts of {project} will arrive here."
        return {
            "text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        }
    title = mrkdwn_escape(alert["title"])
    severity = alert["severity"].capitalize()
    text = f"[{severity}] {title} in {project}"
    details = [_slack_text(alert["summary"])]
    if alert["key"]:
        key = alert["key"]
        details.append(f"Key: {_slack_text(key['name'])} (`{_slack_text(key['hint'])}`)")
    details.append(f"{_seen(alert)}, last at {alert['lastSeen']}")
    # The link's label is ours; only the address (our own) goes between < and >.
    details.append(f"<{alert['url']}|Review it in Reminix>")
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(details)}},
        ],
    }


def _seen(alert: dict[str, Any]) -> str:
    """How many times the alert was seen, as the Alerts page says it: a new-network
    alert's occurrences are the networks it counts ("12 or more new networks"), not
    times. (An event stored before occurrencesAtLeast carries none: its count is shown
    as exact.)"""
    count = alert["occurrences"]
    if alert.get("kind") == Flag.Kind.NEW_NETWORK:
        more = " or more" if alert.get("occurrencesAtLeast") else ""
        return f"{count}{more} new network{'s' if count != 1 or more else ''}"
    return f"Seen {count} time{'s' if count != 1 else ''}"
