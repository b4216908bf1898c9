"""The audit log pages: a project's (for every member) and a user's own, each with a CSV
export. They read the trail through audit/; they are accounts' pages because they need
the member-of-this-project precondition (see audit/apps.py).

One view serves each whole page and, to htmx, only the log (the `audit-log` partial of
accounts/audit_log.html) with the filter form swapped out of band, so that errors stand
beside their field. Filter and pager links are plain GET links that htmx merely speeds up.
The export streams the filtered log, however long, without holding it in memory.
"""

from __future__ import annotations

from typing import TypedDict

from django.http import HttpResponse, HttpResponseBase
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.decorators import login_required, project_member_required
from accounts.http import AuthenticatedRequest, ProjectRequest
from accounts.models import Project
from audit.actions import Scope, action_groups_for
from audit.export import CSV_HEADER, audit_csv_rows
from audit.forms import STALE_LINK, TARGET_KINDS, AuditFilterForm
from audit.models import AuditEvent, AuditEventQuerySet
from audit.reads import StaleCursor, actor_address, audit_page, target_name
from core.csv_stream import EXPORT_MAX_ROWS, csv_response
from core.htmx import pasted_token_opens, render_page_or_fragment, url_with_query

TEMPLATE = "accounts/audit_log.html"


@require_GET
@project_member_required
def project_audit(request: ProjectRequest) -> HttpResponse:
    """The project's audit log. Every member may read it, not only owners."""
    return _audit_log(request, _project_log(request))


@require_GET
@login_required
def user_audit(request: AuthenticatedRequest) -> HttpResponse:
    """What the signed-in user did, in every project, and the sign-ins to their account."""
    return _audit_log(request, _user_log(request))


@require_GET
@pasted_token_opens("accounts:project_audit")
@project_member_required
def project_audit_csv(request: ProjectRequest) -> HttpResponseBase:
    return _audit_csv(request, _project_log(request), name=request.project.slug)


@require_GET
@pasted_token_opens("accounts:user_audit")
@login_required
def user_audit_csv(request: AuthenticatedRequest) -> HttpResponseBase:
    return _audit_csv(request, _user_log(request), name="account")


class _Log(TypedDict):
    scope: Scope
    events: AuditEventQuerySet
    page_url: str
    export_url: str


def _project_log(request: ProjectRequest) -> _Log:
    slug = {"slug": request.project.slug}
    return _Log(
        scope="project",
        events=AuditEvent.objects.for_project(request.project),
        page_url=reverse("accounts:project_audit", kwargs=slug),
        export_url=reverse("accounts:project_audit_csv", kwargs=slug),
    )


def _user_log(request: AuthenticatedRequest) -> _Log:
    return _Log(
        scope="user",
        events=AuditEvent.objects.for_user(request.user),
        page_url=reverse("accounts:user_audit"),
        export_url=reverse("accounts:user_audit_csv"),
    )


def _member_of(request: AuthenticatedRequest, scope: Scope) -> set[int]:
    """The projects the person's own log names by their name: those they are still in. Any
    other is shown by its slug, which never changes (as the export does): its name is its
    owners' to change since, and a former member would read every rename."""
    if scope != "user":
        return set()
    return set(Project.objects.for_user(request.user).values_list("pk", flat=True))


def _audit_log(request: AuthenticatedRequest, log: _Log) -> HttpResponse:
    form = AuditFilterForm(request.GET, scope=log["scope"])
    page = None
    if form.is_valid():
        try:
            page = audit_page(
                scope=log["events"],
                filters=form.filters(),
                before=form.cleaned_data["before"],
                after=form.cleaned_data["after"],
            )
        except StaleCursor:
            form.add_error(None, STALE_LINK)
    page_url = log["page_url"]
    context: dict[str, object] = {
        "scope": log["scope"],
        "form": form,
        "page": page,
        "page_url": page_url,
        "groups": action_groups_for(log["scope"]),
        "export_max_rows": EXPORT_MAX_ROWS,
        "member_of": _member_of(request, log["scope"]),
    }
    address = None
    if page is not None:
        context["links"] = {
            "newest": url_with_query(page_url, form.query()),
            "newer": url_with_query(page_url, form.query(after=page.newer)) if page.newer else "",
            "older": url_with_query(page_url, form.query(before=page.older)) if page.older else "",
            "export": url_with_query(log["export_url"], form.query()),
        }
        if person := form.cleaned_data.get("actor_id"):
            context["person"] = actor_address(scope=log["events"], actor_id=person)
        if target := form.cleaned_data.get("target"):
            context["target_kind"] = TARGET_KINDS[target[0]]
            context["target_name"] = target_name(scope=log["events"], target=target)
        cursor = {name: form.cleaned_data[name] for name in ("before", "after")}
        address = url_with_query(page_url, form.query(**cursor))
    return render_page_or_fragment(
        request,
        TEMPLATE,
        context,
        fragment="audit-log",
        valid=page is not None,
        address=address or page_url,
        fragment_context={"filters_out_of_band": True},
    )


def _audit_csv(request: AuthenticatedRequest, log: _Log, *, name: str) -> HttpResponseBase:
    """The filtered log as CSV, newest first, streamed. Pager cursors are ignored: the
    export is every matching event, not one page."""
    form = AuditFilterForm(request.GET, scope=log["scope"])
    if not form.is_valid():
        # The page, with the errors beside the filters that caused them.
        return _audit_log(request, log)
    today = timezone.now().date().isoformat()
    return csv_response(
        header=CSV_HEADER,
        rows=audit_csv_rows(form.filters().apply(log["events"])),
        filename=f"reminix-audit-{name}-{today}.csv",
    )
