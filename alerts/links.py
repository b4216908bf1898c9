"""Where an alert points: the calls behind it, on its key's usage log. Shared by the Alerts
page and the alert email."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.urls import reverse

from alerts.models import Flag

MINUTE_FORMAT = "%Y-%m-%dT%H:%M"


def _minute(moment: datetime, *, up: bool = False) -> str:
    floor = moment.replace(second=0, microsecond=0)
    if up and floor < moment:
        floor += timedelta(minutes=1)
    return floor.strftime(MINUTE_FORMAT)


def evidence_url(flag: Flag) -> str | None:
    """The key's usage log narrowed to the calls behind `flag`, where there are such calls."""
    if flag.api_key_id is None:
        return None
    url = reverse(
        "usage:api_key_usage", kwargs={"slug": flag.project.slug, "key_id": flag.api_key_id}
    )
    if flag.kind == Flag.Kind.UNUSED_KEY:
        return url
    params: dict[str, str] = {}
    evidence = flag.evidence
    if flag.client_token is not None:
        params["client_token"] = flag.client_token.public_id
    if outcome := evidence.get("outcome"):
        params["outcome"] = outcome
    if flag.kind == Flag.Kind.NEW_NETWORK and evidence.get("ips") and evidence.get("count", 1) == 1:
        params["ip"] = evidence["ips"][0]  # one network: its first call's address
    if flag.kind == Flag.Kind.BLOCKED_NETWORK:
        # The refusals (403: the log has no filter by error code), not the key's own calls
        # in the same minutes; from the one address, when there was one.
        params["status"] = "403"
        if len(evidence.get("ips", [])) == 1:
            params["ip"] = evidence["ips"][0]
    params["since"] = _minute(flag.first_seen)
    params["until"] = _minute(flag.last_seen + timedelta(seconds=1), up=True)
    return f"{url}?{urlencode(params)}"
