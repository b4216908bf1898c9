"""The usage pages: a key's figures, charts and call log; the project's overview and call
log; and the exports of the log rows behind the overview and behind the call log.

One view serves each whole page and, to htmx, the part that changes (a {% partialdef %}
of the page's own template, see core/htmx.py). Filter and pager links are plain GET
links that htmx merely speeds up: the pages work the same without JavaScript. Each export
reads the same filters from the same query string as its page, so the file holds exactly
the rows that the overview counted or that the call log lists.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.http import Http404, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.decorators import project_member_required
from accounts.http import ProjectRequest
from apikeys.models import ApiKey
from apikeys.tokens import TokenKind
from core.csv_stream import EXPORT_MAX_ROWS, csv_response
from core.forms import DATETIME_INPUT
from core.htmx import (
    pasted_token_opens,
    render_page_or_fragment,
    url_with_query,
    wants_fragment,
)
from usage.charts import (
    KEY_SERIES,
    chart_title,
    legend,
    overview_chart,
    overview_legend,
    window_chart,
)
from usage.export import (
    USAGE_CSV_HEADER,
    project_calls_export_rows,
    usage_export_rows,
)
from usage.forms import (
    AddressPageForm,
    KeyLogFilterForm,
    OverviewFilterForm,
    ProjectLogFilterForm,
    UsageFilterForm,
)
from usage.key_usage import (
    CALLER_CLIENT_TOKENS,
    CALLER_KEY,
    Cursor,
    LogPage,
    UsageWindow,
    key_address_counts,
    key_addresses_page,
    key_usage_summary,
    usage_log_page,
)
from usage.networks import networks_context
from usage.overview import ProjectOverview, Stack, project_usage_overview
from usage.project_log import project_call, project_log_page

KEY_TEMPLATE = "usage/api_key_usage.html"
ADDRESSES_TEMPLATE = "usage/api_key_addresses.html"
OVERVIEW_TEMPLATE = "usage/project_usage.html"


@require_GET
@project_member_required
def api_key_usage(request: ProjectRequest, key_id: int) -> HttpResponse:
    api_key = get_object_or_404(
        ApiKey.objects.for_project(request.project)
        .select_related("revoked_by", "suspended_by")
        .with_open_alert_counts(),  # named in the header: the reason someone looks here
        pk=key_id,
    )
    form = KeyLogFilterForm(request.GET)
    page = None
    if form.is_valid():
        page = usage_log_page(
            api_key=api_key,
            filters=form.filters(),
            before=form.cleaned_data["before"],
            after=form.cleaned_data["after"],
            oldest_first=form.oldest_first,
        )
    context: dict[str, object] = {"api_key": api_key, "form": form, "page": page}
    address = None
    if page is not None:
        context["links"], address = _pager(request, form, page)
        context.update(_key_calls_export(request, api_key, form))
    if not wants_fragment(request):
        context.update(_key_summary(api_key))
        context.update(networks_context(api_key))
    return render_page_or_fragment(
        request,
        KEY_TEMPLATE,
        context,
        fragment="usage-log",
        valid=page is not None,
        address=address or request.path,
        fragment_context={"filters_out_of_band": True},
    )


@require_GET
@project_member_required
def api_key_addresses(
    request: ProjectRequest, key_id: int, via_client_tokens: bool = False
) -> HttpResponse:
    """Every address the key itself was used from (or, at .../client-tokens/, its client
    tokens), most recently seen first, a page at a time: the usage page lists ten of each
    and says how many more."""
    api_key = get_object_or_404(ApiKey.objects.for_project(request.project), pk=key_id)
    form = AddressPageForm(request.GET)
    context: dict[str, object] = {
        "api_key": api_key,
        "form": form,
        "page": None,
        "via_client_tokens": via_client_tokens,
        "counts": key_address_counts(api_key=api_key),
    }
    if not form.is_valid():
        return render(request, ADDRESSES_TEMPLATE, context, status=400)
    page = key_addresses_page(
        api_key=api_key,
        via_client_tokens=via_client_tokens,
        before=form.cleaned_data["before"],
        after=form.cleaned_data["after"],
    )
    context["page"] = page
    context["links"] = {
        "latest": request.path,
        "newer": url_with_query(request.path, f"after={Cursor(*page.previous)}")
        if page.previous
        else "",
        "older": url_with_query(request.path, f"before={Cursor(*page.next)}") if page.next else "",
    }
    return render(request, ADDRESSES_TEMPLATE, context)


def _key_calls_export(
    request: ProjectRequest, api_key: ApiKey, form: KeyLogFilterForm
) -> dict[str, object]:
    """The export of what the key's log shows: the project's call export narrowed to the
    key (its own calls and its client tokens', as its log, or the one kind its caller
    filter asks for) and the log's filters. What an alert's "See the calls" opens can be
    kept and handed on."""
    export_url = reverse("usage:project_calls_export", args=[request.project.slug])
    query = "&".join(q for q in (urlencode({"key": api_key.pk}), form.project_export_query()) if q)
    return {"export_url": url_with_query(export_url, query), "export_max_rows": EXPORT_MAX_ROWS}


def _pager(
    request: ProjectRequest, form: UsageFilterForm, page: LogPage
) -> tuple[dict[str, str], str]:
    """The pager's links for `page`, and the address bar's tidy form of what was asked,
    without the empty fields a submitted form sends (?outcome=&status=401 is ?status=401)."""
    links = {
        # The first page in the log's order: the newest calls, or the oldest.
        "first": url_with_query(request.path, form.query()),
        "newer": url_with_query(request.path, form.query(after=page.newer)) if page.newer else "",
        "older": url_with_query(request.path, form.query(before=page.older)) if page.older else "",
    }
    cursor = {name: form.cleaned_data[name] for name in ("before", "after")}
    return links, url_with_query(request.path, form.query(**cursor))


def _weekly(window: UsageWindow) -> bool:
    return len(window.hours) > 48


def _key_summary(api_key: ApiKey) -> dict[str, object]:
    """The figures and charts above a key's log, from the roll-ups."""
    summary = key_usage_summary(api_key=api_key, now=timezone.now())
    return {
        "summary": summary,
        "windows": [
            {
                "window": window,
                # A day's figures hour by hour; a week's day by day, its hours on demand.
                "chart": window_chart(window, chart_id=f"chart-{i}", by_day=_weekly(window)),
                "hourly_chart": (
                    window_chart(window, chart_id=f"chart-{i}-hours") if _weekly(window) else ""
                ),
                "by_day": _weekly(window),
                "rows": window.days if _weekly(window) else window.hours,
            }
            for i, window in enumerate(summary.windows)
        ],
        "legend": legend(KEY_SERIES),
    }


@require_GET
@project_member_required
def project_usage(request: ProjectRequest) -> HttpResponse:
    form = OverviewFilterForm(request.GET, project=request.project, now=timezone.now())
    overview = None
    if form.is_valid():
        overview = project_usage_overview(
            project=request.project, filters=form.filters(), stack=form.cleaned_data["stack"]
        )
    return render_page_or_fragment(
        request,
        OVERVIEW_TEMPLATE,
        _overview_context(request, form, overview),
        fragment="overview",
        valid=overview is not None,
        # The address bar gets the tidy form of what was asked, without empty fields.
        address=url_with_query(request.path, form.query()),
    )


@require_GET
@pasted_token_opens("usage:project_usage")
@project_member_required
def project_usage_export(request: ProjectRequest) -> HttpResponseBase:
    """The log rows that the overview with the same query string counts, as CSV."""
    form = OverviewFilterForm(request.GET, project=request.project, now=timezone.now())
    if not form.is_valid():
        # Only a hand-edited link gets here: show what is wrong, beside its field.
        context = _overview_context(request, form, None)
        return render(request, OVERVIEW_TEMPLATE, context, status=400)
    return csv_response(
        header=USAGE_CSV_HEADER,
        rows=usage_export_rows(project=request.project, filters=form.filters()),
        filename=f"reminix-usage-{request.project.slug}-{form.now:%Y-%m-%d}.csv",
    )


def _overview_context(
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
            "legend": overview_legend(overview),
            "export_url": url_with_query(export_url, form.query(with_stack=False)),
            "export_max_rows": EXPORT_MAX_ROWS,
            "stack_links": [
                {
                    "label": label,
                    "href": url_with_query(overview_url, form.query(stack=value)),
                    "current": value == overview.stack,
                }
                for value, label in Stack.choices
            ],
            # A key's link opens its log at the calls the table counted for it: this range,
            # outcome, address and kind of call.
            "key_log_query": _key_log_query(overview),
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
    from it in this range, of the token type chosen (the key's own, its client tokens' or
    both, as the address's count); otherwise to this overview narrowed to it."""
    key = overview.filters.api_key
    if key is None:
        overview_url = reverse("usage:project_usage", args=[request.project.slug])
        return {"href": url_with_query(overview_url, form.query(ip=ip)), "htmx": True}
    query = _key_log_query(overview, ip=ip)
    key_url = reverse("usage:api_key_usage", args=[request.project.slug, key.pk])
    return {"href": url_with_query(key_url, query), "htmx": False}


def _key_log_query(overview: ProjectOverview, *, ip: str = "") -> str:
    """A key's log narrowed to what the overview counted for it: its range (the per-key
    filter takes whole minutes: the end rounded up, never cutting calls off), outcome,
    address or network (`ip`, else the overview's), and token type as the log's Caller."""
    time_range = overview.time_range
    params = {
        "ip": ip or overview.filters.ip,
        "since": f"{time_range.since:{DATETIME_INPUT}}",
        "until": f"{_ceil_minute(time_range.until):{DATETIME_INPUT}}",
        "outcome": overview.filters.outcome,
        "caller": _KEY_LOG_CALLERS.get(overview.filters.token_kind, ""),
    }
    return urlencode({name: value for name, value in params.items() if value})


# The overview's token type as the key log's Caller takes it (a key's calls are never a
# personal access token's: with both chosen the overview lists no address to link).
_KEY_LOG_CALLERS: dict[str, str] = {
    TokenKind.API_KEY.value: CALLER_KEY,
    TokenKind.CLIENT_TOKEN.value: CALLER_CLIENT_TOKENS,
}


def _ceil_minute(moment: datetime) -> datetime:
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(minutes=1)


CALLS_TEMPLATE = "usage/project_calls.html"


@require_GET
@project_member_required
def project_calls_log(request: ProjectRequest) -> HttpResponse:
    """Every call of the project, newest first (or oldest), filtered and paged like a
    key's log."""
    form = ProjectLogFilterForm(request.GET, project=request.project)
    page = None
    context: dict[str, object] = {"form": form, "calls_url": request.path}
    address = None
    if form.is_valid():
        page = project_log_page(
            project=request.project,
            filters=form.project_filters(),
            before=form.cleaned_data["before"],
            after=form.cleaned_data["after"],
            oldest_first=form.oldest_first,
        )
        context["links"], address = _pager(request, form, page)
        context.update(_calls_export(request, form))
        # A key's link in a row opens the key's calls this log lists.
        context["key_log_query"] = form.key_log_query()
    context["page"] = page
    return render_page_or_fragment(
        request,
        CALLS_TEMPLATE,
        context,
        fragment="calls-log",
        valid=page is not None,
        address=address or request.path,
        # The export link sits beside the filters, outside the log: it follows the log.
        fragment_context={"filters_out_of_band": True},
    )


@require_GET
@project_member_required
def project_call_detail(request: ProjectRequest, request_id: str) -> HttpResponse:
    """Everything recorded about one call of the project; another project's is 404."""
    call = project_call(request.project, request_id)
    if call is None:
        raise Http404("No such call in this project.")
    return render(request, "usage/call_detail.html", {"call": call})


@require_GET
@pasted_token_opens("usage:project_calls")
@project_member_required
def project_calls_export(request: ProjectRequest) -> HttpResponseBase:
    """The calls that the call log with the same query string lists, every page of them,
    in its order (newest first unless ?order=oldest), as CSV (at most
    core.csv_stream.EXPORT_MAX_ROWS). A pager cursor in the query is ignored: the file is
    every page, not the one the link was copied on."""
    query = request.GET.copy()
    for cursor in ("before", "after"):
        query.pop(cursor, None)
    form = ProjectLogFilterForm(query, project=request.project)
    if not form.is_valid():
        # Only a hand-edited link gets here: the call log's page, with what is wrong
        # beside its field, and a form that shows the log once corrected.
        calls_url = reverse("usage:project_calls", args=[request.project.slug])
        context = {"form": form, "page": None, "calls_url": calls_url}
        return render(request, CALLS_TEMPLATE, context, status=400)
    return csv_response(
        header=USAGE_CSV_HEADER,
        rows=project_calls_export_rows(
            project=request.project,
            filters=form.project_filters(),
            oldest_first=form.oldest_first,
        ),
        filename=f"reminix-calls-{request.project.slug}-{timezone.now():%Y-%m-%d}.csv",
    )


def _calls_export(request: ProjectRequest, form: ProjectLogFilterForm) -> dict[str, object]:
    """The link to the export of what the call log shows (its filters, without the page
    position), and how many calls the export stops at."""
    export_url = reverse("usage:project_calls_export", args=[request.project.slug])
    return {
        "export_url": url_with_query(export_url, form.query()),
        "export_max_rows": EXPORT_MAX_ROWS,
    }
