"""A project's usage overview, and the export of the log rows behind it.

One view serves the whole page and, to htmx, the `overview` partial of
usage/project_usage.html (the filters and everything they govern). Every link and the
filter form are plain GETs that htmx merely speeds up: the page works without JavaScript.
The export reads the same filters from the same query string, so the file holds exactly
the rows that the page counted.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import batched
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET
from django_htmx.http import push_url

from accounts.decorators import project_member_required
from accounts.http import ProjectRequest
from accounts.models import Project
from apikeys.models import ApiKey, TokenStatus
from apikeys.tokens import TokenKind
from usage.models import Outcome
from usage.overview import (
    EXPORT_COLUMNS,
    LONGEST_RANGE,
    OverviewFilters,
    ProjectOverview,
    Stack,
    TimeRange,
    project_usage_overview,
    usage_export_rows,
)
from usage.overview_charts import chart_title, legend, overview_chart
from usage.views import DATETIME_INPUT, UtcDateTimeField

TEMPLATE = "usage/project_usage.html"
FILTER_FIELDS = ("range", "since", "until", "key", "token_kind", "outcome", "ip")
CUSTOM = "custom"
PRESETS: dict[str, tuple[str, int, bool]] = {
    # name on the page, how many, of days (else hours)
    "24h": ("Last 24 hours", 24, False),
    "7d": ("Last 7 days", 7, True),
    "30d": ("Last 30 days", 30, True),
}
DEFAULT_RANGE = "24h"


class KeyChoiceField(forms.ModelChoiceField):
    """One of the project's keys, revoked and expired ones included."""

    def label_from_instance(self, obj: Any) -> str:
        label = f"{obj.name} ({obj.hint})"
        status = obj.status
        return label if status is TokenStatus.ACTIVE else f"{label}, {status.label.lower()}"


class OverviewFilterForm(forms.Form):
    """What the overview counts. Every field is optional: an empty form shows every call
    of the last 24 hours. A custom range is `since` to `until` (exclusive, default now).

    `stack` (what the bars are split by) is how the page looks, not what it counts: an
    unknown value falls back to the default rather than failing the form.
    """

    range = forms.ChoiceField(
        label="Time range",
        required=False,
        choices=[*((name, label) for name, (label, _, _) in PRESETS.items()), (CUSTOM, "Custom")],
        error_messages={"invalid_choice": "Choose a time range from the list."},
    )
    since = UtcDateTimeField(label="From (UTC)")
    until = UtcDateTimeField(label="To (UTC)")
    key = KeyChoiceField(
        label="Key",
        queryset=ApiKey.objects.none(),
        required=False,
        empty_label="All keys",
        error_messages={"invalid_choice": "Choose one of this project’s keys from the list."},
    )
    token_kind = forms.ChoiceField(
        label="Token type",
        required=False,
        choices=[("", "Any token type"), *TokenKind.choices],
        error_messages={"invalid_choice": "Choose a token type from the list."},
    )
    outcome = forms.ChoiceField(
        label="Outcome",
        required=False,
        choices=[("", "Any outcome"), *Outcome.choices],
        error_messages={"invalid_choice": "Choose an outcome from the list."},
    )
    ip = forms.GenericIPAddressField(
        label="IP address",
        required=False,
        widget=forms.TextInput(
            attrs={"placeholder": "203.0.113.7", "autocomplete": "off", "spellcheck": "false"}
        ),
        error_messages={"invalid": "Enter an IPv4 or IPv6 address, like 203.0.113.7."},
    )
    stack = forms.CharField(required=False, widget=forms.HiddenInput)

    error_messages = {
        "since_required": "Enter when the range starts.",
        "empty_range": "“To” must be later than “From”.",
        "too_long": f"Choose a range of at most {LONGEST_RANGE.days} days.",
    }

    def __init__(self, data: Any, *, project: Project, now: datetime) -> None:
        super().__init__(data)
        self.now = now
        key_field = self.fields["key"]
        assert isinstance(key_field, KeyChoiceField)
        key_field.queryset = ApiKey.objects.for_project(project)

    def clean_range(self) -> str:
        chosen = self.cleaned_data["range"]
        if chosen:
            return chosen
        # A link that gives only dates (?since=…) means a custom range.
        return CUSTOM if self.is_custom else DEFAULT_RANGE

    def clean_stack(self) -> str:
        stack = self.cleaned_data["stack"]
        return stack if stack in dict(Stack.choices) else Stack.KIND

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        chosen = data.get("range")
        if chosen in PRESETS:
            name, count, days = PRESETS[chosen]
            make = TimeRange.last_days if days else TimeRange.last_hours
            data["time_range"] = make(count, now=self.now, name=name)
        elif chosen == CUSTOM and not self.has_error("since") and not self.has_error("until"):
            data["time_range"] = self._custom_range(data.get("since"), data.get("until"))
        return data

    def _custom_range(self, since: datetime | None, until: datetime | None) -> TimeRange | None:
        if since is None:
            self._fail("since", "since_required")
            return None
        until = until or self.now
        if until <= since:
            self._fail("until", "empty_range")
            return None
        if until - since > LONGEST_RANGE:
            self._fail("since", "too_long")
            return None
        return TimeRange(since.astimezone(UTC), until.astimezone(UTC), "Chosen range")

    def _fail(self, field: str, code: str) -> None:
        self.add_error(field, forms.ValidationError(self.error_messages[code], code=code))

    def filters(self) -> OverviewFilters:
        data = self.cleaned_data
        return OverviewFilters(
            time_range=data["time_range"],
            api_key=data["key"],
            token_kind=data["token_kind"],
            outcome=data["outcome"],
            ip=data["ip"],
        )

    @property
    def is_filtered(self) -> bool:
        return any(self.data.get(name) for name in FILTER_FIELDS)

    @property
    def is_custom(self) -> bool:
        chosen = self.data.get("range")
        if chosen:
            return chosen == CUSTOM
        return bool(self.data.get("since") or self.data.get("until"))

    def query(self, *, with_stack: bool = True, **changes: str) -> str:
        """The filters as given, without the empty fields, with `changes` made."""
        names = (*FILTER_FIELDS, "stack") if with_stack else FILTER_FIELDS
        params = {name: self.data[name] for name in names if self.data.get(name)}
        if not self.is_custom:
            # A preset range ignores the dates that a hidden custom range left in the form.
            params.pop("since", None)
            params.pop("until", None)
        if params.get("stack") == Stack.KIND:
            params.pop("stack")
        for name, value in changes.items():
            if value:
                params[name] = value
            else:
                params.pop(name, None)
        return urlencode(params)


@require_GET
@project_member_required
def project_usage(request: ProjectRequest) -> HttpResponse:
    form = OverviewFilterForm(request.GET, project=request.project, now=timezone.now())
    overview = None
    if form.is_valid():
        overview = project_usage_overview(
            project=request.project, filters=form.filters(), stack=form.cleaned_data["stack"]
        )
    template = TEMPLATE
    if request.htmx and not request.htmx.history_restore_request:
        template += "#overview"
    # htmx keeps a 200 so that it swaps the errors in; a whole page says what it is.
    status = 400 if overview is None and not request.htmx else 200
    response = render(request, template, _context(request, form, overview), status=status)
    if request.htmx and overview is not None:
        # The address bar gets the tidy form of what was asked, without empty fields.
        push_url(response, _url(request.path, form.query()))
    # The same URL answers a page or a fragment: caches must keep them apart.
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_GET
@project_member_required
def project_usage_export(request: ProjectRequest) -> HttpResponse:
    """The log rows that the overview with the same query string counts, as CSV."""
    form = OverviewFilterForm(request.GET, project=request.project, now=timezone.now())
    if not form.is_valid():
        # Only a hand-edited link gets here: show what is wrong, beside its field.
        return render(request, TEMPLATE, _context(request, form, None), status=400)
    rows = usage_export_rows(project=request.project, filters=form.filters())
    response = StreamingHttpResponse(_csv_lines(rows), content_type="text/csv; charset=utf-8")
    filename = f"reminix-usage-{request.project.slug}-{form.now:%Y-%m-%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _context(
    request: ProjectRequest, form: OverviewFilterForm, overview: ProjectOverview | None
) -> dict[str, object]:
    overview_url = reverse("usage:project_usage", args=[request.project.slug])
    context: dict[str, object] = {
        "form": form,
        "overview": overview,
        # Not "overview_url": base.html names the Overview tab's address so.
        "usage_overview_url": overview_url,
        "has_keys": ApiKey.objects.for_project(request.project).exists(),
    }
    if overview is None:
        return context
    export_url = reverse("usage:project_usage_export", args=[request.project.slug])
    context.update(
        {
            "chart": overview_chart(overview, chart_id="overview-chart"),
            "chart_title": chart_title(overview),
            "legend": legend(overview),
            "export_url": _url(export_url, form.query(with_stack=False)),
            "stack_links": [
                {
                    "label": label,
                    "href": _url(overview_url, form.query(stack=value)),
                    "current": value == overview.stack,
                }
                for value, label in Stack.choices
            ],
            "addresses": [
                {"row": row, **_address_link(request, form, overview, row.ip)}
                for row in overview.top_addresses
            ],
            "clear_url": overview_url,
        }
    )
    return context


def _address_link(
    request: ProjectRequest, form: OverviewFilterForm, overview: ProjectOverview, ip: str
) -> dict[str, object]:
    """Where an address in the top list leads: with one key chosen, to that key's calls
    from it in this range; otherwise to this overview narrowed to it."""
    key = overview.filters.api_key
    if key is None:
        overview_url = reverse("usage:project_usage", args=[request.project.slug])
        return {"href": _url(overview_url, form.query(ip=ip)), "htmx": True}
    time_range = overview.time_range
    params = {
        "ip": ip,
        "since": f"{time_range.since:{DATETIME_INPUT}}",
        # The per-key filter takes whole minutes: round the end up, never cut calls off.
        "until": f"{_ceil_minute(time_range.until):{DATETIME_INPUT}}",
    }
    if overview.filters.outcome:
        params["outcome"] = overview.filters.outcome
    key_url = reverse("usage:api_key_usage", args=[request.project.slug, key.pk])
    return {"href": _url(key_url, urlencode(params)), "htmx": False}


def _ceil_minute(moment: datetime) -> datetime:
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(minutes=1)


def _url(path: str, query: str) -> str:
    return f"{path}?{query}" if query else path


# -- CSV ----------------------------------------------------------------------------------

ROWS_PER_CHUNK = 500


class _Echo:
    """A file that hands back what is written to it, for csv.writer to format one row."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(rows: Iterable[list[object]]) -> Iterator[str]:
    """CSV text in pieces of a few hundred rows: fewer, larger writes to the client."""
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    for chunk in batched(rows, ROWS_PER_CHUNK):
        yield "".join([writer.writerow(row) for row in chunk])
