"""Alerts: the project's suspicious-activity flags, each explained, linked to the calls
behind it, and acknowledged by a member (who and when are kept, and audited)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Prefetch, prefetch_related_objects
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import (
    project_member_required,
    project_owner_required,
    verified_email_required_to_change,
)
from accounts.http import ProjectRequest
from accounts.models import Project
from accounts.sudo import sudo_required, sudo_required_to_change
from alerts.forms import AlertRulesForm, FlagFilterForm, TokenLookupForm
from alerts.links import evidence_note, evidence_url
from alerts.models import AlertRules, Flag
from alerts.services import (
    NotAboutANetwork,
    alert_rules_set,
    flag_acknowledge,
    flag_network_ours,
    flags_acknowledge_for_key,
)
from apikeys.models import ApiKey, ClientToken, TokenStatus
from apikeys.tokens import TokenKind, token_hash, token_kind
from core.client_ip import client_ip
from core.htmx import render_page_or_fragment, url_with_query
from core.text_direction import quoted

TEMPLATE = "alerts/flag_list.html"
RECENTLY = timedelta(days=30)
OPEN_SHOWN = 100


def _filter_query(form: FlagFilterForm) -> str:
    """The list's filter as a query string ("" when unfiltered or not understood): the
    acknowledge and "is ours" forms carry it, so the list they answer with, or redirect
    to, is the one the filter above it names."""
    key = form.cleaned_data.get("key") if form.is_valid() else None
    return urlencode({"key": key.pk}) if key else ""


def _list_url(request: ProjectRequest, form: FlagFilterForm) -> str:
    return url_with_query(
        reverse("alerts:flag_list", args=[request.project.slug]), _filter_query(form)
    )


def _context(request: ProjectRequest, form: FlagFilterForm) -> dict[str, object]:
    # Their keys, client tokens and people are read for the alerts shown, once those are
    # picked: joined in, every open alert's were read (the whole client token table hashed)
    # before the sort cut them to OPEN_SHOWN.
    flags = Flag.objects.for_project(request.project).select_related("project")
    context: dict[str, object] = {"form": form, "filter_query": _filter_query(form)}
    if not form.is_valid():
        return context
    if key := form.cleaned_data["key"]:
        flags = flags.filter(api_key=key)
    # Detection opens a flag per key and finding (or client token), so a project of many
    # keys can have many open: the most severe and recent are shown, with how many more
    # (acknowledging them brings the next into view).
    open_flags = list(flags.open().most_pressing_first()[: OPEN_SHOWN + 1])
    context["open_count"] = (
        flags.open().count() if len(open_flags) > OPEN_SHOWN else len(open_flags)
    )
    open_flags = open_flags[:OPEN_SHOWN]
    recent = list(
        flags.filter(acknowledged_at__gte=timezone.now() - RECENTLY).order_by("-acknowledged_at")[
            :50
        ]
    )
    # A key still tried says how often since it ended (with_refusals_since_end).
    their_keys = Prefetch("api_key", ApiKey.objects.with_refusals_since_end())
    prefetch_related_objects([*open_flags, *recent], their_keys, "client_token", "acknowledged_by")
    _count_open_of_their_keys(open_flags)
    context["open_flags"] = [(f, evidence_url(f), evidence_note(f)) for f in open_flags]
    context["acknowledged_flags"] = [(f, evidence_url(f), evidence_note(f)) for f in recent]
    return context


def _count_open_of_their_keys(flags: list[Flag]) -> None:
    """Each shown alert's `key_open`: how many open alerts its key has (shown or not), so
    a card of a key with several can offer to acknowledge them all."""
    counts = Flag.objects.open().count_per_key({f.api_key_id for f in flags if f.api_key_id})
    for flag in flags:
        flag.key_open = counts.get(flag.api_key_id or 0, 0)  # type: ignore[attr-defined]


@require_GET
@project_member_required
def flag_list(request: ProjectRequest) -> HttpResponse:
    form = FlagFilterForm(request.GET, project=request.project)
    context = {**_context(request, form), "lookup_form": TokenLookupForm()}
    # A history restore (htmx's cache missed) gets the whole page, which htmx puts in
    # place of the body; a filter by htmx, the list alone.
    return render_page_or_fragment(
        request, TEMPLATE, context, fragment="flags", valid=form.is_valid()
    )


@require_POST
@project_member_required
def flag_acknowledge_view(request: ProjectRequest, flag_id: int) -> HttpResponse:
    flag = get_object_or_404(Flag.objects.for_project(request.project), pk=flag_id)
    if flag_acknowledge(flag=flag, by=request.user, ip=client_ip(request)):
        messages.success(request, "Alert acknowledged.")
    # The form's address carries the list's filter (see _filter_query).
    form = FlagFilterForm(request.GET, project=request.project)
    if request.htmx:
        # The list, and the count in the navigation swapped out of band.
        context = {**_context(request, form), "count_oob": True}
        return render(request, TEMPLATE + "#flags", context)
    return redirect(_list_url(request, form))


@require_POST
@project_member_required
def flags_acknowledge_for_key_view(request: ProjectRequest, key_id: int) -> HttpResponse:
    """ "Acknowledge all N of this key": see alerts.services.flags_acknowledge_for_key."""
    api_key = get_object_or_404(ApiKey.objects.for_project(request.project), pk=key_id)
    count = flags_acknowledge_for_key(
        project=request.project, api_key=api_key, by=request.user, ip=client_ip(request)
    )
    if count:
        alerts = "alert" if count == 1 else "alerts"
        messages.success(request, f"{count} {alerts} of {quoted(api_key.name)} acknowledged.")
    form = FlagFilterForm(request.GET, project=request.project)
    if request.htmx:
        context = {**_context(request, form), "count_oob": True}
        return render(request, TEMPLATE + "#flags", context)
    return redirect(_list_url(request, form))


@require_POST
@project_member_required
@sudo_required
def flag_network_ours_view(request: ProjectRequest, flag_id: int) -> HttpResponse:
    """ "This network is ours": see alerts.services.flag_network_ours."""
    flag = get_object_or_404(
        Flag.objects.for_project(request.project).select_related("api_key", "project"),
        pk=flag_id,
    )
    try:
        networks = flag_network_ours(flag=flag, by=request.user, ip=client_ip(request))
    except (NotAboutANetwork, ValidationError) as refused:
        messages.error(request, " ".join(getattr(refused, "messages", [str(refused)])))
    else:
        allowed = (
            " and added to its allowed networks" if flag.kind == Flag.Kind.BLOCKED_NETWORK else ""
        )
        messages.success(
            request,
            f"{', '.join(networks)} is now one of the key's known networks{allowed}; the alert "
            "is acknowledged.",
        )
    form = FlagFilterForm(request.GET, project=request.project)
    if request.htmx:
        context = {**_context(request, form), "count_oob": True}
        return render(request, TEMPLATE + "#flags", context)
    return redirect(_list_url(request, form))


@dataclass(frozen=True)
class Found:
    """What a pasted token turned out to be in this project."""

    api_key: ApiKey | None = None
    client_token: ClientToken | None = None
    previous_secret: bool = False

    @property
    def works(self) -> bool:
        """Whether a call made with the pasted token now would be answered."""
        now = timezone.now()
        if self.client_token is not None:
            return self.client_token.end_reason_at(now) is None and not (
                self.client_token.api_key and self.client_token.api_key.suspended_at
            )
        assert self.api_key is not None
        if self.api_key.status_at(now) is not TokenStatus.ACTIVE:
            return False
        return not self.previous_secret or self.api_key.previous_secret_works_at(now)

    @property
    def state(self) -> str:
        token = self.client_token or self.api_key
        assert token is not None
        if self.works:
            return "still works"
        status = token.status_at(timezone.now())
        if status is TokenStatus.ACTIVE:
            return "stopped"  # an old secret past its overlap, or a parent that ended
        return str(status.label).lower()


def _find(project: Project, token: str) -> Found | None:
    digest = token_hash(token)
    if token_kind(token) is TokenKind.CLIENT_TOKEN:
        client_token = (
            ClientToken.objects.for_project(project)
            .filter(token_hash=digest)
            .select_related("api_key")
            .first()
        )
        return Found(client_token=client_token) if client_token else None
    keys = ApiKey.objects.for_project(project)
    if key := keys.filter(token_hash=digest).first():
        return Found(api_key=key)
    if key := keys.filter(previous_token_hash=digest).first():
        return Found(api_key=key, previous_secret=True)
    return None


@sensitive_post_parameters("token")
@require_POST
@project_member_required
def token_lookup(request: ProjectRequest) -> HttpResponse:
    """Which of the project's keys or client tokens a token someone found is, with a link
    to its usage. Every member's: a member sees every key's name and hint and may suspend,
    roll or revoke any of them, so the answer names nothing they could not act on. The
    token is compared by its keyed hash and goes nowhere: not into the answer, the audit
    log or any log; another project's token is simply not found here."""
    lookup_form = TokenLookupForm(request.POST)
    context: dict[str, object] = {"lookup_form": TokenLookupForm(), "looked_up": True}
    status = 200
    if not lookup_form.is_valid():
        context["lookup_form"], status = lookup_form, 422
    else:
        context["found"] = _find(request.project, lookup_form.cleaned_data["token"])
    if request.htmx:
        return render(request, TEMPLATE + "#token-lookup", context, status=status)
    form = FlagFilterForm({}, project=request.project)
    return render(request, TEMPLATE, {**_context(request, form), **context}, status=status)


RULES_TEMPLATE = "alerts/alert_rules.html"


@require_http_methods(["GET", "POST"])
@project_owner_required
@verified_email_required_to_change
@sudo_required_to_change
def alert_rules(request: ProjectRequest) -> HttpResponse:
    """The project's own thresholds for each alert kind, and which kinds are on. Owners
    only: a rule decides whether anyone hears of a finding at all."""
    if request.method == "GET":
        return render(request, RULES_TEMPLATE, {"form": _stored_rules_form(request)})
    form = AlertRulesForm(request.POST)
    template = RULES_TEMPLATE + "#rules-form" if request.htmx else RULES_TEMPLATE
    if not form.is_valid():
        return render(request, template, {"form": form}, status=422)
    changes = alert_rules_set(
        project=request.project,
        values=form.values(),
        off=form.off(),
        by=request.user,
        ip=client_ip(request),
    )
    if changes:
        messages.success(request, "Alert rules saved. They apply from the next check.")
    else:
        messages.info(request, "The alert rules are as they were.")
    if request.htmx:
        return render(request, template, {"form": _stored_rules_form(request)})
    return redirect("alerts:alert_rules", slug=request.project.slug)


def _stored_rules_form(request: ProjectRequest) -> AlertRulesForm:
    rules = AlertRules.objects.filter(project=request.project).first() or AlertRules()
    return AlertRulesForm(initial=AlertRulesForm.initial_of(rules.values(), rules.off))
