"""The audit log pages: a project's (for every member) and a user's own, each with a CSV export.

One view serves each whole page and, to htmx, only the log (the `audit-log` partial of
accounts/audit_log.html) with the filter form swapped out of band, so that errors stand
beside their field. Filter and pager links are plain GET links that htmx merely speeds up.
The export streams the filtered log, however long, without holding it in memory.
"""

from __future__ import annotations

from typing import Any, TypedDict

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET
from django_htmx.http import push_url

from accounts.audit import (
    AuditFilters,
    Scope,
    StaleCursor,
    action_groups_for,
    audit_csv_rows,
    audit_page,
    csv_lines,
)
from accounts.decorators import project_member_required
from accounts.http import AuthenticatedRequest, ProjectRequest
from accounts.models import AuditEvent, AuditEventQuerySet
from core.forms import PagedFilterForm

TEMPLATE = "accounts/audit_log.html"
FILTER_FIELDS = ("action", "actor", "ip", "since", "until")


class EventIdField(forms.IntegerField):
    """A page position from a pager link: the id of the event the page starts next to."""

    default_error_messages = {
        "invalid": "This page link is damaged or out of date. Start again from the newest events."
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            required=False,
            min_value=1,
            max_value=2**63 - 1,
            widget=forms.HiddenInput,
            error_messages={
                "min_value": self.default_error_messages["invalid"],
                "max_value": self.default_error_messages["invalid"],
            },
            **kwargs,
        )


class UtcDateField(forms.DateField):
    """A whole day in UTC."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            required=False,
            widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            error_messages={"invalid": "Enter a date, like 2025-06-03."},
            **kwargs,
        )


class AuditFilterForm(PagedFilterForm):
    """Narrows an audit log. Every field is optional; an empty form shows every event.

    The project page filters by who acted; on a user's own page that is always them, so
    the field is left out there. Also reads the pager's cursor (`before` or `after`).
    """

    action = forms.ChoiceField(
        label="Action",
        required=False,
        error_messages={"invalid_choice": "Choose a kind of action from the list."},
    )
    actor = forms.CharField(
        label="Actor email",
        required=False,
        max_length=254,
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": "ada@example.com",
                "autocomplete": "off",
                "spellcheck": "false",
            }
        ),
        error_messages={"max_length": "An email address is at most 254 characters."},
    )
    ip = forms.GenericIPAddressField(
        label="IP address",
        required=False,
        widget=forms.TextInput(
            attrs={"placeholder": "203.0.113.7", "autocomplete": "off", "spellcheck": "false"}
        ),
        error_messages={"invalid": "Enter an IPv4 or IPv6 address, like 203.0.113.7."},
    )
    since = UtcDateField(label="From (UTC)")
    until = UtcDateField(label="To (UTC)")
    before = EventIdField()
    after = EventIdField()

    filter_fields = FILTER_FIELDS
    error_messages = {
        "empty_range": "“To” must be on or after “From”.",
        "two_cursors": "This page link is damaged. Start again from the newest events.",
    }

    def __init__(self, *args: Any, scope: Scope, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scope = scope
        self.fields["action"].choices = [
            ("", "Any action"),
            *((group.key, group.label) for group in action_groups_for(scope)),
        ]
        if scope == "user":
            del self.fields["actor"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and until < since:
            self.add_error(
                "until",
                forms.ValidationError(self.error_messages["empty_range"], code="empty_range"),
            )
        return data

    def filters(self) -> AuditFilters:
        data = self.cleaned_data
        return AuditFilters(
            group=data["action"],
            actor=data.get("actor", "").strip(),
            ip=data["ip"],
            since=data["since"],
            until=data["until"],
        )


@require_GET
@project_member_required
def project_audit(request: ProjectRequest) -> HttpResponse:
    """The project's audit log. Every member may read it, not only owners."""
    return _audit_log(request, **_project_log(request))


@require_GET
@login_required
def user_audit(request: AuthenticatedRequest) -> HttpResponse:
    """What the signed-in user did, in every project, and the sign-ins to their account."""
    return _audit_log(request, **_user_log(request))


@require_GET
@project_member_required
def project_audit_csv(request: ProjectRequest) -> HttpResponse:
    return _audit_csv(request, name=request.project.slug, **_project_log(request))


@require_GET
@login_required
def user_audit_csv(request: AuthenticatedRequest) -> HttpResponse:
    return _audit_csv(request, name="account", **_user_log(request))


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


def _audit_log(
    request: AuthenticatedRequest,
    *,
    scope: Scope,
    events: AuditEventQuerySet,
    page_url: str,
    export_url: str,
) -> HttpResponse:
    form = AuditFilterForm(request.GET, scope=scope)
    page = None
    if form.is_valid():
        try:
            page = audit_page(
                scope=events,
                filters=form.filters(),
                before=form.cleaned_data["before"],
                after=form.cleaned_data["after"],
            )
        except StaleCursor:
            form.add_error(None, EventIdField.default_error_messages["invalid"])
    context: dict[str, object] = {
        "scope": scope,
        "form": form,
        "page": page,
        "page_url": page_url,
        "groups": action_groups_for(scope),
    }
    if page is not None:
        context["links"] = {
            "newest": _url(page_url, form.query()),
            "newer": _url(page_url, form.query(after=page.newer)) if page.newer else "",
            "older": _url(page_url, form.query(before=page.older)) if page.older else "",
            "export": _url(export_url, form.query()),
        }

    template = TEMPLATE
    if request.htmx and not request.htmx.history_restore_request:
        template += "#audit-log"
        context["filters_out_of_band"] = True
    # htmx keeps a 200 so that it swaps the errors in; a whole page says what it is.
    status = 400 if page is None and not request.htmx else 200
    response = render(request, template, context, status=status)
    if "filters_out_of_band" in context:
        if page is None:
            # Errors stay on screen; the address bar keeps the last log that was shown.
            push_url(response, False)
        else:
            # The address bar gets the tidy form of what was asked, without the empty fields.
            cursor = {name: form.cleaned_data[name] for name in ("before", "after")}
            push_url(response, _url(page_url, form.query(**cursor)))
    # The same URL answers a page or a fragment: caches must keep them apart.
    patch_vary_headers(response, ["HX-Request"])
    return response


def _audit_csv(
    request: AuthenticatedRequest,
    *,
    name: str,
    scope: Scope,
    events: AuditEventQuerySet,
    page_url: str,
    export_url: str,
) -> HttpResponse:
    """The filtered log as CSV, newest first, streamed. Pager cursors are ignored: the
    export is every matching event, not one page."""
    form = AuditFilterForm(request.GET, scope=scope)
    if not form.is_valid():
        # The page, with the errors beside the filters that caused them.
        return _audit_log(
            request, scope=scope, events=events, page_url=page_url, export_url=export_url
        )
    rows = audit_csv_rows(form.filters().apply(events))
    response = StreamingHttpResponse(csv_lines(rows), content_type="text/csv; charset=utf-8")
    today = timezone.now().date().isoformat()
    response["Content-Disposition"] = f'attachment; filename="reminix-audit-{name}-{today}.csv"'
    return response


def _url(path: str, query: str) -> str:
    return f"{path}?{query}" if query else path
