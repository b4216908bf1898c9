"""The per-key usage page: figures and charts from the roll-ups, and the call log.

One view serves the whole page and, to htmx, only the log (the `usage-log` partial of
usage/api_key_usage.html) with the filter form swapped out of band, so that errors
stand beside their field. Filter and pager links are plain GET links that htmx merely
speeds up: the page works the same without JavaScript.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET
from django_htmx.http import push_url

from accounts.decorators import project_member_required
from accounts.http import ProjectRequest
from apikeys.models import ApiKey
from core.forms import PagedFilterForm
from usage.charts import hour_chart, legend
from usage.key_usage import Cursor, LogFilters, key_usage_summary, usage_log_page
from usage.models import Outcome

TEMPLATE = "usage/api_key_usage.html"
FILTER_FIELDS = ("outcome", "status", "ip", "since", "until", "client_token")
DATETIME_INPUT = "%Y-%m-%dT%H:%M"


class CursorField(forms.CharField):
    """A page position from a pager link (see usage_queries.Cursor)."""

    default_error_messages = {
        "invalid": "This page link is damaged or out of date. Start again from the newest calls."
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, max_length=64, widget=forms.HiddenInput, **kwargs)

    def clean(self, value: Any) -> Cursor | None:
        text = super().clean(value)
        if not text:
            return None
        try:
            return Cursor.parse(text)
        except ValueError:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None


class UtcDateTimeField(forms.DateTimeField):
    """A minute in UTC, from a datetime-local input (which sends no zone)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            required=False,
            widget=forms.DateTimeInput(
                attrs={"type": "datetime-local", "step": 60}, format=DATETIME_INPUT
            ),
            error_messages={"invalid": "Enter a date and time in UTC, like 2025-06-03 14:30."},
            **kwargs,
        )


class UsageFilterForm(PagedFilterForm):
    """Narrows a key's call log. Every field is optional; an empty form shows every call.

    Also reads the pager's cursor (`before` or `after`), which the form never renders.
    """

    outcome = forms.ChoiceField(
        label="Outcome",
        required=False,
        choices=[("", "Any outcome"), *Outcome.choices],
        error_messages={"invalid_choice": "Choose an outcome from the list."},
    )
    status = forms.IntegerField(
        label="Status",
        required=False,
        min_value=100,
        max_value=599,
        widget=forms.NumberInput(attrs={"placeholder": "401", "inputmode": "numeric"}),
        error_messages={
            "invalid": "Enter an HTTP status code, like 401.",
            "min_value": "Enter an HTTP status code from 100 to 599.",
            "max_value": "Enter an HTTP status code from 100 to 599.",
        },
    )
    ip = forms.GenericIPAddressField(
        label="IP address",
        required=False,
        widget=forms.TextInput(
            attrs={"placeholder": "203.0.113.7", "autocomplete": "off", "spellcheck": "false"}
        ),
        error_messages={"invalid": "Enter an IPv4 or IPv6 address, like 203.0.113.7."},
    )
    since = UtcDateTimeField(label="From (UTC)")
    until = UtcDateTimeField(label="To (UTC)")
    client_token = forms.RegexField(
        label="Client token",
        regex=r"^ctok_[A-Za-z0-9]{20}$",
        required=False,
        widget=forms.TextInput(
            attrs={"placeholder": "ctok_…", "autocomplete": "off", "spellcheck": "false"}
        ),
        error_messages={"invalid": "Enter a client token id, like ctok_ and 20 letters or digits."},
    )
    before = CursorField()
    after = CursorField()

    filter_fields = FILTER_FIELDS
    error_messages = {
        "empty_range": "“To” must be later than “From”.",
        "two_cursors": "This page link is damaged. Start again from the newest calls.",
    }

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and until <= since:
            self.add_error(
                "until",
                forms.ValidationError(self.error_messages["empty_range"], code="empty_range"),
            )
        return data

    def filters(self) -> LogFilters:
        data = self.cleaned_data
        return LogFilters(
            outcome=data["outcome"],
            status=data["status"],
            ip=data["ip"],
            since=data["since"],
            until=data["until"],
            client_token=data["client_token"],
        )


@require_GET
@project_member_required
def api_key_usage(request: ProjectRequest, key_id: int) -> HttpResponse:
    api_key = get_object_or_404(
        ApiKey.objects.for_project(request.project).select_related("revoked_by"), pk=key_id
    )
    form = UsageFilterForm(request.GET)
    page = None
    if form.is_valid():
        page = usage_log_page(
            api_key=api_key,
            filters=form.filters(),
            before=form.cleaned_data["before"],
            after=form.cleaned_data["after"],
        )
    context: dict[str, object] = {"api_key": api_key, "form": form, "page": page}
    if page is not None:
        context["links"] = {
            "newest": _url(request.path, form.query()),
            "newer": _url(request.path, form.query(after=page.newer)) if page.newer else "",
            "older": _url(request.path, form.query(before=page.older)) if page.older else "",
        }

    template = TEMPLATE
    if request.htmx and not request.htmx.history_restore_request:
        template += "#usage-log"
        context["filters_out_of_band"] = True
    else:
        summary = key_usage_summary(api_key=api_key, now=timezone.now())
        context["summary"] = summary
        context["windows"] = [
            {
                "window": window,
                "chart": hour_chart(window, chart_id=f"chart-{i}"),
                # A day's figures hour by hour; a week's, day by day.
                "by_day": len(window.hours) > 48,
                "rows": window.days if len(window.hours) > 48 else window.hours,
            }
            for i, window in enumerate(summary.windows)
        ]
        context["legend"] = legend()
    # htmx keeps a 200 so that it swaps the errors in; a whole page says what it is.
    status = 400 if page is None and not request.htmx else 200
    response = render(request, template, context, status=status)
    if "filters_out_of_band" in context and page is not None:
        # The address bar gets the tidy form of what was asked, without the empty fields
        # a submitted form sends (?outcome=&status=401&ip=… becomes ?status=401).
        cursor = {name: form.cleaned_data[name] for name in ("before", "after")}
        push_url(response, _url(request.path, form.query(**cursor)))
    # The same URL answers a page or a fragment: caches must keep them apart.
    patch_vary_headers(response, ["HX-Request"])
    return response


def _url(path: str, query: str) -> str:
    return f"{path}?{query}" if query else path
