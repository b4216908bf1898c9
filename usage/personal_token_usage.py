"""A personal access token's own usage page, for the person it belongs to: its calls in
the last day and week, the projects it was used in, and its call log across all of them,
filtered and paged like a key's.

Its log takes the filters of a key's log, user agent and path among them (bounded to a
day: the pages walk the usage_pat_time index and test each row's text), and its Caller:
the token itself, the client tokens it minted, or both (PersonalTokenLogFilterForm). Its
Download CSV is what the log lists, every page of it. A PAT is a person's, not a
project's, so the page lives under /account/tokens/ and only its owner can open it, and
its export (anyone else: 404). Its calls are read from the log itself (there
is no per-PAT roll-up): a week of one person's calls is small next to a project's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, Q
from django.http import HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.decorators import login_required
from accounts.http import AuthenticatedRequest
from accounts.models import Membership, Project
from apikeys.models import PersonalAccessToken
from core.csv_stream import EXPORT_MAX_ROWS, csv_response
from core.htmx import (
    pasted_token_opens,
    render_page_or_fragment,
    url_with_query,
    wants_fragment,
)
from usage.export import PERSONAL_TOKEN_CSV_HEADER, usage_csv_rows
from usage.forms import PersonalTokenLogFilterForm
from usage.key_usage import NEWEST_FIRST, OLDEST_FIRST, PAGE_SIZE, log_page_of
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


def _owned(request: AuthenticatedRequest, token_id: int) -> PersonalAccessToken:
    """The person's own token (anyone else's, or none: 404)."""
    return get_object_or_404(PersonalAccessToken.objects.for_user(request.user), pk=token_id)


def _log_context(
    request: AuthenticatedRequest, pat: PersonalAccessToken, form: PersonalTokenLogFilterForm
) -> dict[str, object]:
    return {
        "pat": pat,
        "form": form,
        # The log links a call to its project's page only where the person still is: the
        # log is also answered alone (htmx), so this is read for both.
        "member_of": set(Project.objects.for_user(request.user).values_list("pk", flat=True)),
        "export_of": "this token",
    }


@require_GET
@login_required
def personal_token_usage(request: AuthenticatedRequest, token_id: int) -> HttpResponse:
    pat = _owned(request, token_id)
    form = PersonalTokenLogFilterForm(request.GET)
    page = None
    context = _log_context(request, pat, form)
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
        export_url = reverse("usage:personal_token_usage_export", args=[pat.pk])
        context["export_url"] = url_with_query(export_url, form.query())
        context["export_max_rows"] = EXPORT_MAX_ROWS
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


@require_GET
@pasted_token_opens("usage:personal_token_usage")
@login_required
def personal_token_usage_export(request: AuthenticatedRequest, token_id: int) -> HttpResponseBase:
    """The calls that the token's log with the same query string lists, every page of
    them, in its order, as CSV (at most core.csv_stream.EXPORT_MAX_ROWS; the columns of
    the project's call export, and each call's project). A pager cursor in the query is ignored."""
    pat = _owned(request, token_id)
    query = request.GET.copy()
    for cursor in ("before", "after"):
        query.pop(cursor, None)
    form = PersonalTokenLogFilterForm(query)
    if not form.is_valid():
        # Only a hand-edited link gets here: the token's page, what is wrong beside its field.
        now = timezone.now()
        context = {
            **_log_context(request, pat, form),
            "page": None,
            "tallies": pat_tallies(pat, now),
            "projects": pat_projects(pat, now),
            "now": now,
        }
        return render(request, TEMPLATE, context, status=400)
    records = form.filters().apply(pat_calls(pat))
    order = OLDEST_FIRST if form.oldest_first else NEWEST_FIRST
    return csv_response(
        header=PERSONAL_TOKEN_CSV_HEADER,
        rows=usage_csv_rows(project=None, records=records, order=order),
        filename=f"reminix-calls-token-{pat.pk}-{timezone.now():%Y-%m-%d}.csv",
    )
