"""client_token_many_ips (medium): one client token used from a project's number
(CLIENT_TOKEN_MAX_IPS) of addresses or more."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from django.db.models import Max, Min

from alerts.detection.flags import _raise
from alerts.detection.result import DetectionResult, _isolated
from alerts.detection.thresholds import Rules
from alerts.models import Flag
from apikeys.models import ClientToken
from usage.models import UsageRecord


def _client_token_ips(
    rows: list[dict[str, Any]], now: datetime, result: DetectionResult, rules: Rules
) -> None:
    tokens = {
        (r["project_id"], r["client_token_id"])
        for r in rows
        if r["client_token_id"] and rules[r["project_id"]].on(Flag.Kind.CLIENT_TOKEN_MANY_IPS)
    }
    for project_id, ct_id in tokens:
        most = rules[project_id].client_token_max_ips
        many = partial(_client_token_many_ips, project_id, ct_id, most, result)
        _isolated(f"addresses of client token {ct_id}", many, result)


def _client_token_many_ips(project_id: int, ct_id: int, most: int, result: DetectionResult) -> None:
    ips = list(
        UsageRecord.objects.filter(client_token_id=ct_id, ip__isnull=False)
        .values_list("ip", flat=True)
        .distinct()[: most * 4]
    )
    if len(ips) < most:
        return
    span = UsageRecord.objects.filter(client_token_id=ct_id).aggregate(
        first=Min("created_at"), last=Max("created_at")
    )
    ct = ClientToken.objects.only("public_id", "api_key_id").get(pk=ct_id)
    _raise(
        result,
        project_id=project_id,
        api_key_id=ct.api_key_id,
        client_token_id=ct_id,
        kind=Flag.Kind.CLIENT_TOKEN_MANY_IPS,
        severity=Flag.Severity.MEDIUM,
        subject="",
        summary=f"Client token {ct.public_id} was used from {len(ips)}"
        f"{'+' if len(ips) >= most * 4 else ''} addresses; a token minted "
        "for one browser should see one or two.",
        evidence={"ips": ips[:10], "count": len(ips), "since": span["first"].isoformat()},
        seen_from=span["first"],
        seen_to=span["last"],
    )
