"""Alerts: the project's suspicious-activity flags, each explained, linked to the calls
behind it, and acknowledged by a member (who and when are kept, and audited)."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.contrib import messages
from django.db import transaction
from django.db.models import Case, IntegerField, Value, When
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import project_member_required
from accounts.http import ProjectRequest
from apikeys.models import ApiKey, Flag
from audit.log import audit_record
from core.client_ip import client_ip

TEMPLATE = "apikeys/flag_list.html"
RECENTLY = timedelta(days=30)
MINUTE_FORMAT = "%Y-%m-%dT%H:%M"
SEVERITY_ORDER = Case(
    When(severity=Flag.Severity.HIGH, then=Value(0)),
    When(severity=Flag.Severity.MEDIUM, then=Value(1)),
    default=Value(2),
    output_field=IntegerField(),
)


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
    if flag.client_token_id:
        params["client_token"] = flag.client_token.public_id
    if outcome := evidence.get("outcome"):
        params["outcome"] = outcome
    if flag.kind == Flag.Kind.NEW_NETWORK and evidence.get("ips"):
        params["ip"] = evidence["ips"][0]
    params["since"] = _minute(flag.first_seen)
    params["until"] = _minute(flag.last_seen + timedelta(seconds=1), up=True)
    return f"{url}?{urlencode(params)}"


def _context(request: ProjectRequest) -> dict[str, object]:
    flags = Flag.objects.for_project(request.project).select_related(
        "api_key", "client_token", "acknowledged_by", "project"
    )
    key_filter = request.GET.get("key", "")
    keys = ApiKey.objects.for_project(request.project).order_by("name")
    if key_filter.isdigit():
        flags = flags.filter(api_key_id=int(key_filter))
    open_flags = list(flags.open().order_by(SEVERITY_ORDER, "-last_seen"))
    recent = list(
        flags.filter(acknowledged_at__gte=timezone.now() - RECENTLY).order_by("-acknowledged_at")[
            :50
        ]
    )
    return {
        "open_flags": [(f, evidence_url(f)) for f in open_flags],
        "acknowledged_flags": [(f, evidence_url(f)) for f in recent],
        "keys": keys,
        "key_filter": key_filter,
    }


@require_GET
@project_member_required
def flag_list(request: ProjectRequest) -> HttpResponse:
    template = TEMPLATE + "#flags" if request.htmx else TEMPLATE
    return render(request, template, _context(request))


@require_POST
@project_member_required
def flag_acknowledge(request: ProjectRequest, flag_id: int) -> HttpResponse:
    with transaction.atomic():
        flag = get_object_or_404(
            Flag.objects.for_project(request.project).select_for_update(), pk=flag_id
        )
        if flag.acknowledged_at is None:
            flag.acknowledged_at = timezone.now()
            flag.acknowledged_by = request.user
            flag.save(update_fields=["acknowledged_at", "acknowledged_by"])
            audit_record(
                action="flag.acknowledged",
                actor=request.user,
                project=request.project,
                target=flag,
                target_label=flag.summary[:200],
                ip=client_ip(request),
                metadata={"kind": flag.kind, "severity": flag.severity},
            )
            messages.success(request, "Alert acknowledged.")
    if request.htmx:
        # The list, and the count in the navigation swapped out of band.
        return render(request, TEMPLATE + "#flags", {**_context(request), "count_oob": True})
    return redirect("apikeys:flag_list", slug=request.project.slug)
