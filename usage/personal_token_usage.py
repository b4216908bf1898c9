"""A personal access token's own usage page, for the person it belongs to: its calls in
the last day and week, the projects it was used in, and its call log across all of them,
filtered and paged like a key's.

Its log takes the filters of a key's log, user agent and path among them (TextLogFilterForm,
which bounds those two to a day: the pages walk the usage_pat_time index and test each
row's text). A PAT is a person's, not a project's, so the page lives under /account/tokens/ and only
its owner can open it (anyone else: 404). Its calls are read from the log itself (there
is no per-PAT roll-up): a week of one person's calls is small next to a project's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.decorators import login_required
from accounts.http import AuthenticatedRequest
from accounts.models import Membership, Project
from apikeys.models import PersonalAccessToken
from core.htmx import filters_without_secrets, render_page_or_fragment, wants_fragment
from usage.forms import TextLogFilterForm
from usage.key_usage import PAGE_SIZE, log_page_of
from usage.models import Outcome, UsageRecord, UsageRecordQuerySet
from usage.views import _pager

TEMPLATE = "usage/personal_token_usage.html"


@dataclass(frozen=True, slots=True)
class Tally:
    """Calls since a moment: all of them, and those refused or failed."""

    label: str
    calls: int
    refused: int


@dataclass(frozen=True, slots=True)
class ProjectUse:
    """One row of a PAT's usage page's "Projects it called in the last 7 days" (pat_projects);
    `project` is None for calls that named none or were refused first."""

    project: Project | None
    calls: int
    last: datetime


def pat_calls(pat: PersonalAccessToken) -> UsageRecordQuerySet:
    """The token's rows and nothing else: every read here starts from this fence.

    Calls made with a client token the PAT minted are a project's end users' (their
    addresses, their browsers). In a project its owner has since left, those belong to the
    project alone; the owner's own calls there stay theirs to see."""
    member_of = Membership.objects.filter(user_id=pat.user_id).values("project_id")
    return UsageRecord.objects.filter(personal_token=pat).exclude(
        Q(client_token__isnull=False) & ~Q(project_id__in=member_of)
    )


def pat_tallies(pat: PersonalAccessToken, now: datetime) -> list[Tally]:
    day, week = now - timedelta(days=1), now - timedelta(days=7)
    refused = ~Q(outcome=Outcome.OK)
    figures = (
        pat_calls(pat)
        .filter(created_at__gte=week)
        .aggregate(
            day=Count("id", filter=Q(created_at__gte=day)),
            day_refused=Count("id", filter=Q(created_at__gte=day) & refused),
            week=Count("id"),
            week_refused=Count("id", filter=refused),
        )
    )
    return [
        Tally("Last 24 hours", figures["day"], figures["day_refused"]),
        Tally("Last 7 days", figures["week"], figures["week_refused"]),
    ]


def pat_projects(pat: PersonalAccessToken, now: datetime) -> list[ProjectUse]:
    """The projects it called in the last 7 days, busiest first (None: calls that named
    no project, or were refused before one was known)."""
    rows = (
        pat_calls(pat)
        .filter(created_at__gte=now - timedelta(days=7))
        .values("project")
        .annotate(calls=Count("id"), last=Max("created_at"))
        .order_by("-calls", "project")
    )
    projects = Project.objects.in_bulk([row["project"] for row in rows if row["project"]])
    return [ProjectUse(projects.get(row["project"]), row["calls"], row["last"]) for row in rows]


@require_GET
@filters_without_secrets
@login_required
def personal_token_usage(request: AuthenticatedRequest, token_id: int) -> HttpResponse:
    pat = get_object_or_404(PersonalAccessToken.objects.for_user(request.user), pk=token_id)
    form = TextLogFilterForm(request.GET)
    page = None
    context: dict[str, object] = {
        "pat": pat,
        "form": form,
        # The log links a call to its project's page only where the person still is: the
        # log is also answered alone (htmx), so this is read for both.
        "member_of": set(Project.objects.for_user(request.user).values_list("pk", flat=True)),
    }
    address = None
    if form.is_valid():
        records = form.filters().apply(pat_calls(pat).select_related("project", "client_token"))
        page = log_page_of(
            records,
            before=form.cleaned_data["before"],
            after=form.cleaned_data["after"],
            size=PAGE_SIZE,
            oldest_first=form.oldest_first,
        )
        context["links"], address = _pager(request, form, page)  # type: ignore[arg-type]
    context["page"] = page
    if not wants_fragment(request):
        now = timezone.now()
        context["tallies"] = pat_tallies(pat, now)
        context["projects"] = pat_projects(pat, now)
        context["now"] = now
    return render_page_or_fragment(
        request,
        TEMPLATE,
        context,
        fragment="pat-log",
        valid=page is not None,
        address=address or request.path,
        fragment_context={"filters_out_of_band": True},
    )
