"""A key's call log holds two kinds of call: those made with the key itself (its servers,
or a leak's holder) and those of the client tokens it minted (its users' browsers), marked
"via ctok_…". The Caller filter narrows it to one kind, and the usage page's two address
tables open the log at an address with their own kind only: a browser address that is
also the server's (a NAT, an office) opened both."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Project
from apikeys.models import ApiKey, ClientToken
from apikeys.services import client_token_create, personal_token_create
from core.csv_stream import EXPORT_MAX_ROWS
from tests.conftest import HTMX, exported_request_ids, log_export_link, log_walk, usage_call
from tests.plans import assert_walked_in_order_reading, log_scans, plan_nodes
from usage.forms import KeyLogFilterForm, ProjectLogFilterForm
from usage.key_usage import NEWEST_FIRST, OLDEST_FIRST, PAGE_SIZE
from usage.models import UsageRecord
from usage.writer import usage_write

SHARED = "198.51.100.23"  # the office: its server and its people's browsers
SERVER = "203.0.113.7"


@pytest.fixture
def calls(key: ApiKey, minted: ClientToken) -> dict[str, list[str]]:
    """Three calls of the key itself and two of its client token from the shared address,
    one of the key from its server: each kind's request ids, newest first."""
    now = timezone.now()
    own = [
        usage_call(now - timedelta(minutes=m), key=key, ip=SHARED, request_id=f"req_own_{m}")
        for m in (1, 3, 5)
    ]
    tokens = [
        usage_call(
            now - timedelta(minutes=m), client_token=minted, ip=SHARED, request_id=f"req_ct_{m}"
        )
        for m in (2, 4)
    ]
    server = usage_call(now - timedelta(minutes=6), key=key, ip=SERVER, request_id="req_srv")
    usage_write([*own, *tokens, server])
    return {
        "own": ["req_own_1", "req_own_3", "req_own_5"],
        "tokens": ["req_ct_2", "req_ct_4"],
    }


def usage_url(project: Project, key: ApiKey) -> str:
    return reverse("usage:api_key_usage", args=[project.slug, key.pk])


def section(html: str, start: str, end: str) -> str:
    at = html.index(start)
    return html[at : html.index(end, at)]


def address_link(html: str) -> str:
    match = re.search(rf'<a href="([^"]*ip={re.escape(SHARED)}[^"]*)"', html)
    assert match is not None, html
    return match.group(1).replace("&amp;", "&")


def test_each_address_table_opens_the_log_at_that_address_with_its_own_kind_of_call(
    signed_in: Client, project: Project, key: ApiKey, calls: dict[str, list[str]]
) -> None:
    html = signed_in.get(usage_url(project, key)).content.decode()
    own = section(html, 'id="addresses-title"', 'id="token-addresses-title"')
    browsers = section(html, 'id="token-addresses-title"', 'id="networks-title"')
    for table, kind in ((own, "own"), (browsers, "tokens")):
        link = address_link(table)
        assert parse_qs(urlsplit(link).query)["ip"] == [SHARED]
        shown = log_walk(signed_in, link)
        assert shown == calls[kind], kind


def test_the_address_pages_open_the_log_with_their_own_kind_of_call(
    signed_in: Client, project: Project, key: ApiKey, calls: dict[str, list[str]]
) -> None:
    for name, kind in (
        ("usage:api_key_addresses", "own"),
        ("usage:api_key_token_addresses", "tokens"),
    ):
        html = signed_in.get(reverse(name, args=[project.slug, key.pk])).content.decode()
        link = address_link(html).split("#")[0]
        assert log_walk(signed_in, link) == calls[kind], kind


@pytest.mark.parametrize(
    ("caller", "kinds"), [("key", ["own"]), ("client_tokens", ["tokens"]), ("", ["own", "tokens"])]
)
def test_the_caller_filter_keeps_one_kind_of_call_on_every_page_and_in_the_export(
    signed_in: Client,
    project: Project,
    key: ApiKey,
    calls: dict[str, list[str]],
    caller: str,
    kinds: list[str],
) -> None:
    url = usage_url(project, key)
    params = {"ip": SHARED, "caller": caller} if caller else {"ip": SHARED}
    expected = sorted((i for kind in kinds for i in calls[kind]), key=lambda i: int(i[-1]))
    assert log_walk(signed_in, url, params) == expected
    response = signed_in.get(url, params)
    assert exported_request_ids(signed_in, log_export_link(response)) == expected
    oldest = log_walk(signed_in, url, {**params, "order": "oldest"})
    assert oldest == expected[::-1]


def test_the_caller_field_stands_beside_the_address_field(
    signed_in: Client, project: Project, key: ApiKey, calls: dict[str, list[str]]
) -> None:
    html = signed_in.get(usage_url(project, key), {"caller": "client_tokens"}).content.decode()
    form = section(html, 'id="usage-filters"', "</form>")
    fields = re.findall(r'<div class="field field-([a-z-]+)">', form)
    assert fields[fields.index("ip") + 1] == "caller"
    caller = re.search(r'<div class="field field-caller">(.*?)</div>', form, re.S)
    assert caller is not None
    assert 'value="client_tokens" selected' in caller.group(1)
    assert "The key itself" in caller.group(1) and "Its client tokens" in caller.group(1)


def test_the_project_log_has_no_caller_field(signed_in: Client, project: Project) -> None:
    """Its Token type says the same (a personal access token's log has one: see
    test_personal_token_caller_filter.py)."""
    url = reverse("usage:project_calls", args=[project.slug])
    assert "field-caller" not in signed_in.get(url).content.decode()


ODD = ["bogus", "²", "\x00", "a\x00b", "x" * 10_000, "9999-12-31T23:59", "KEY"]


@pytest.mark.parametrize("value", ODD, ids=lambda v: repr(v)[:20])
def test_odd_callers_are_refused_beside_the_field_and_not_shown_back(
    signed_in: Client, project: Project, key: ApiKey, value: str
) -> None:
    url = usage_url(project, key)
    response = signed_in.get(url, {"caller": value})
    assert response.status_code == 400, value
    html = response.content.decode()
    field = re.search(r'<div class="field field-caller">(.*?)</div>', html, re.S)
    assert field is not None and 'aria-invalid="true"' in field.group(1)
    assert "Choose a caller from the list" in field.group(1)
    assert "\x00" not in html and "x" * 300 not in html
    htmx = signed_in.get(url, {"caller": value}, headers=HTMX)
    assert htmx.status_code == 200 and 'aria-invalid="true"' in htmx.content.decode()


def test_a_lone_surrogates_bytes_in_the_caller_are_answered(
    signed_in: Client, project: Project, key: ApiKey
) -> None:
    for raw in ("%ED%A0%80", "%FF"):
        response = signed_in.get(f"{usage_url(project, key)}?caller={raw}")
        assert response.status_code == 400, raw


def test_a_lone_surrogate_given_to_the_form_is_refused() -> None:
    form = KeyLogFilterForm({"caller": "key\ud800"})
    assert not form.is_valid() and "caller" in form.errors


def test_the_key_itself_and_a_client_token_of_it_are_refused_together(
    signed_in: Client, project: Project, key: ApiKey, minted: ClientToken, calls: Any
) -> None:
    """A client token's calls are never the key's own: said beside the field, not answered
    with an empty log that reads as "never called"."""
    response = signed_in.get(
        usage_url(project, key), {"caller": "key", "client_token": minted.public_id}
    )
    assert response.status_code == 400
    field = re.search(
        r'<div class="field field-caller">(.*?)</div>', response.content.decode(), re.S
    )
    assert field is not None and "client token" in field.group(1)
    both = signed_in.get(
        usage_url(project, key), {"caller": "client_tokens", "client_token": minted.public_id}
    )
    assert [r.request_id for r in both.context["page"].rows] == calls["tokens"]


def test_a_token_pasted_into_the_caller_is_neither_kept_nor_shown(
    signed_in: Client, project: Project, api_key: tuple[ApiKey, str]
) -> None:
    key, secret = api_key
    url = usage_url(project, key)
    response = signed_in.get(url, {"caller": secret, "status": "401"})
    assert response.status_code == 303
    assert response["Location"] == f"{url}?status=401"
    page = signed_in.get(response["Location"]).content.decode()
    assert "not searched for" in page and secret not in page


def test_an_address_only_its_client_tokens_used_has_no_calls_of_the_key_itself(
    signed_in: Client, project: Project, key: ApiKey, minted: ClientToken
) -> None:
    usage_write([usage_call(timezone.now(), client_token=minted, ip="192.0.2.9")])
    url = usage_url(project, key)
    assert signed_in.get(url, {"ip": "192.0.2.9", "caller": "key"}).context["page"].rows == []
    rows = signed_in.get(url, {"ip": "192.0.2.9", "caller": "client_tokens"}).context["page"].rows
    assert len(rows) == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_its_client_tokens_calls_are_read_without_passing_over_the_keys_own(
    project: Project, key: ApiKey, minted: ClientToken, make_key: Any
) -> None:
    """A key that mints a few client tokens among millions of its own calls: the page of
    "Its client tokens" read every one of its own calls to find them (a million of them
    took it to 0.87 s). It walks an index of the key's client tokens' calls in the page's
    order, and reads only those, while another key's browsers make many more."""
    now = timezone.now()
    other, _ = make_key(project, name="Browser app")
    others_token, _ = client_token_create(project=project, api_key=other, context={})
    usage_write(
        [usage_call(now - timedelta(seconds=i), key=key) for i in range(1, 150)]
        + [usage_call(now - timedelta(seconds=i), client_token=others_token) for i in range(150)]
        + [usage_call(now - timedelta(days=d, hours=1), client_token=minted) for d in (0, 3)]
    )
    form = KeyLogFilterForm({"caller": "client_tokens"})
    assert form.is_valid()
    records = form.filters().apply(UsageRecord.objects.for_key(key).select_related("client_token"))
    assert_walked_in_order_reading([records], [NEWEST_FIRST], rows=2, first=PAGE_SIZE + 1)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_the_keys_own_calls_are_read_without_passing_over_its_client_tokens(
    project: Project, key: ApiKey, minted: ClientToken, make_key: Any
) -> None:
    """A key whose browsers make most of its calls: "The key itself" walked every call of
    the key newest first and passed over its client tokens' to find its own (400,000 of
    them read, 0.25 s; a million, 0.86 s, and as long again for the export's first rows).
    The page and its CSV export walk an index of the key's own calls in the log's order,
    and read only those, while another key makes many more of its own."""
    now = timezone.now()
    other, _ = make_key(project, name="Server")
    usage_write(
        [usage_call(now - timedelta(seconds=i), client_token=minted) for i in range(1, 150)]
        + [usage_call(now - timedelta(seconds=i), key=other) for i in range(150)]
        + [usage_call(now - timedelta(days=d, hours=1), key=key) for d in (0, 3)]
    )
    form = KeyLogFilterForm({"caller": "key"})
    assert form.is_valid()
    page = form.filters().apply(UsageRecord.objects.for_key(key).select_related("client_token"))
    export_form = ProjectLogFilterForm(
        {"key": str(key.pk), **dict(parse_qsl(form.project_export_query()))}, project=project
    )
    assert export_form.is_valid(), export_form.errors
    export = export_form.project_filters().records(project)  # what the export reads
    assert_walked_in_order_reading(
        [page, export], [NEWEST_FIRST, OLDEST_FIRST], rows=2, first=PAGE_SIZE + 1
    )


def log_estimate(nodes: list[dict[str, Any]]) -> int:
    """The rows a plan expects to take from the log (its partitions), kept."""
    return sum(n["Plan Rows"] for n in log_scans(nodes))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_the_keys_own_calls_export_is_planned_as_its_page_among_mostly_other_tokens_calls(
    user: Any, project: Project, key: ApiKey, minted: ClientToken
) -> None:
    """A day whose calls are mostly a personal access token's and its client tokens': the
    key's export with "The key itself" (the project's export, the key and API key calls)
    said project, key, token_kind = 'api_key' and no client token, and the planner, taking
    them for independent, expected a sliver of the key's own calls (12,000 of 200,000),
    so read every call of the key and sorted them (400,002 rows, 0.32-0.37 s; with an
    address, 0.21-0.24 s). It asks what the key's page asks, so expects what the page
    expects, and walks the key's own calls in order as the CSV reads them."""
    pat, _ = personal_token_create(user=user, name="CI", expires_at=None)
    pats_token, _ = client_token_create(project=project, personal_token=pat, context={})
    now = timezone.now()
    usage_write(
        [usage_call(now - timedelta(seconds=2 * i), key=key) for i in range(60)]
        + [usage_call(now - timedelta(seconds=2 * i + 1), client_token=minted) for i in range(60)]
        + [usage_call(now - timedelta(seconds=i), pat=pat, project=project) for i in range(300)]
        + [usage_call(now - timedelta(seconds=i), client_token=pats_token) for i in range(300)]
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE apikeys_usagerecord")  # as autovacuum would have, at this size
    for address in ("", "203.0.113.7"):
        form = KeyLogFilterForm({"caller": "key", "ip": address})
        assert form.is_valid(), form.errors
        page = form.filters().apply(UsageRecord.objects.for_key(key))
        export_form = ProjectLogFilterForm(
            {"key": str(key.pk), **dict(parse_qsl(form.project_export_query()))}, project=project
        )
        assert export_form.is_valid(), export_form.errors
        export = export_form.project_filters().records(project)  # what the export reads
        for order in (NEWEST_FIRST, OLDEST_FIRST):
            read = [q.order_by(*order)[: EXPORT_MAX_ROWS + 1] for q in (page, export)]
            assert log_estimate(plan_nodes(read[1])) == log_estimate(plan_nodes(read[0]))
            # As usage_csv_rows reads it: through a cursor on the server.
            sql, params = read[1].values_list("request_id").query.sql_with_params()
            declare = f"DECLARE export NO SCROLL CURSOR FOR {sql}"
            nodes = plan_nodes(declare, params, bitmap_scans=True)
            assert not [n for n in nodes if n["Node Type"] == "Sort"], nodes
            assert all(n["Node Type"] == "Index Scan" for n in log_scans(nodes)), nodes
