"""The call logs (a key's, the project's) narrow to one agent, as they narrow to an outcome
or an address: what a "called agents it had not called" alert opens is the calls to that
agent, not every call of the key in those minutes."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from accounts.models import Project
from agents.api import is_agent_name
from apikeys.models import ApiKey
from tests.conftest import (
    HTMX,
    exported_request_ids,
    log_export_link,
    log_next_link,
    log_walk,
    usage_call,
)
from tests.plans import plan_nodes
from usage.forms import ProjectLogFilterForm, UsageFilterForm
from usage.key_usage import NEWEST_FIRST, PAGE_SIZE, LogFilters
from usage.models import UsageRecord
from usage.project_log import ProjectLogFilters, project_calls
from usage.writer import usage_write


@pytest.fixture
def now() -> datetime:
    return timezone.now()


@pytest.fixture
def calls(key: ApiKey, make_key, now: datetime) -> None:
    """Sixty calls to my-agent, sixty to payroll-admin, a few without an agent, and
    another key's calls to payroll-admin."""
    other, _ = make_key(key.project, name="Other")
    entries = []
    for i in range(60):
        at = now - timedelta(minutes=i, seconds=5)
        entries += [
            usage_call(at, key=key, agent="my-agent"),
            usage_call(at - timedelta(seconds=1), key=key, agent="payroll-admin"),
            usage_call(at - timedelta(seconds=2), key=other, agent="payroll-admin"),
        ]
        if i % 10 == 0:
            entries.append(usage_call(at - timedelta(seconds=3), key=key, agent=""))
    usage_write(entries)


def key_url(key: ApiKey, **params: str) -> str:
    url = reverse("usage:api_key_usage", args=[key.project.slug, key.pk])
    return f"{url}?{'&'.join(f'{k}={v}' for k, v in params.items())}" if params else url


def calls_url(project: Project) -> str:
    return reverse("usage:project_calls", args=[project.slug])


def newest_first(**filters: object) -> list[str]:
    rows = UsageRecord.objects.filter(**filters).order_by(*NEWEST_FIRST)
    return list(rows.values_list("request_id", flat=True))


# -- The key's log ----------------------------------------------------------------------------


def test_the_keys_log_narrows_to_one_agent_on_every_page(signed_in, key, calls):
    shown = log_walk(signed_in, key_url(key), {"agent": "payroll-admin"})
    assert shown == newest_first(api_key=key, agent="payroll-admin")
    assert len(shown) == 60 > PAGE_SIZE


def test_the_pager_keeps_the_agent(signed_in, key, calls):
    older = log_next_link(signed_in.get(key_url(key, agent="payroll-admin")))
    assert older is not None
    query = parse_qs(urlsplit(older).query)
    assert query["agent"] == ["payroll-admin"] and "before" in query


def test_the_keys_filtered_log_downloads_exactly_what_it_lists(signed_in, key, calls):
    url = key_url(key, agent="payroll-admin")
    download = log_export_link(signed_in.get(url))
    assert "agent=payroll-admin" in download
    assert exported_request_ids(signed_in, download) == log_walk(signed_in, url) != []


def test_the_agent_filter_is_a_field_of_the_form_and_kept_in_the_address(signed_in, key, calls):
    html = signed_in.get(key_url(key, agent="payroll-admin", outcome="")).content.decode()
    field = re.search(r'<div class="field field-agent">(.*?)</div>', html, re.S)
    assert field is not None and 'name="agent"' in field.group(1)
    assert 'value="payroll-admin"' in field.group(1)
    response = signed_in.get(key_url(key, agent="payroll-admin", outcome=""), headers=HTMX)
    assert response.headers["HX-Push-Url"].endswith("?agent=payroll-admin")
    assert 'id="usage-filters"' in response.content.decode()


def test_an_agent_no_call_named_matches_nothing_and_offers_to_clear(signed_in, key, calls):
    html = signed_in.get(key_url(key, agent="export-all")).content.decode()
    assert "No calls match these filters." in html


BAD_NAMES = ["my agent", "a/b", "x" * 65, "x" * 5000, "a\x00b", "\x00", "<b>", "é", "a\nb"]


def short(value: object) -> str:
    return repr(value)[:24]


@pytest.mark.parametrize("name", BAD_NAMES, ids=short)
def test_what_cannot_be_an_agent_name_is_refused_beside_the_field(signed_in, key, calls, name):
    response = signed_in.get(key_url(key), {"agent": name})
    assert response.status_code == 400
    html = response.content.decode()
    field = re.search(r'<div class="field field-agent">(.*?)</div>', html, re.S)
    assert field is not None
    assert "Enter an agent name" in field.group(1)
    assert 'aria-invalid="true"' in field.group(1)
    assert "\x00" not in html and "x" * 100 not in html and "<b>" not in html

    htmx = signed_in.get(key_url(key), {"agent": name}, headers=HTMX)
    assert htmx.status_code == 200 and "Enter an agent name" in htmx.content.decode()


@pytest.mark.parametrize("url", ["log", "export"])
def test_a_token_pasted_as_the_agent_is_neither_searched_nor_shown(signed_in, api_key, url):
    key, secret = api_key
    address = key_url(key)
    if url == "export":
        address = reverse("usage:project_calls_export", args=[key.project.slug])
    response = signed_in.get(address, {"agent": secret}, follow=True)
    assert response.status_code in (200, 400)
    body = (
        b"".join(response.streaming_content) if response.streaming else response.content
    ).decode()
    assert secret not in body
    assert all(secret not in hop for hop, _ in response.redirect_chain)


@pytest.mark.parametrize(
    "name",
    ["my-agent", "A_b-9", "x" * 64, *BAD_NAMES, "reminix_sk_x", "", " a", "a\n"],
    ids=short,
)
def test_the_filter_takes_exactly_the_names_an_agent_can_have(name):
    form = UsageFilterForm({"agent": name})
    assert form.is_valid() == (name.strip() == "" or is_agent_name(name.strip()))


# -- The project's log ------------------------------------------------------------------------


def test_the_projects_log_narrows_to_one_agent_and_downloads_the_same(signed_in, key, calls):
    url = calls_url(key.project)
    shown = log_walk(signed_in, url, {"agent": "payroll-admin"})
    assert shown == newest_first(project=key.project, agent="payroll-admin")
    assert len(shown) == 120
    download = log_export_link(signed_in.get(url, {"agent": "payroll-admin"}))
    assert exported_request_ids(signed_in, download) == shown


def test_the_projects_log_refuses_a_bad_agent_beside_the_field(signed_in, key):
    response = signed_in.get(calls_url(key.project), {"agent": "x" * 5000})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_agent_error"' in html and "x" * 100 not in html
    export = reverse("usage:project_calls_export", args=[key.project.slug])
    assert signed_in.get(export, {"agent": "a\x00b"}).status_code == 400


# -- PostgreSQL's plan ------------------------------------------------------------------------


def agent_scans(nodes: list[dict]) -> list[dict]:
    return [n for n in nodes if n.get("Relation Name", "").startswith("apikeys_usagerecord")]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_a_keys_page_of_one_agent_walks_an_index_of_its_calls_to_that_agent(key, calls):
    """A key's millions of calls to its own agent are not read to find the few to another."""
    form = UsageFilterForm({"agent": "payroll-admin"})
    assert form.is_valid()
    records = form.filters().apply(UsageRecord.objects.for_key(key))
    nodes = plan_nodes(records.order_by(*NEWEST_FIRST)[: PAGE_SIZE + 1])
    assert not [n for n in nodes if n["Node Type"] == "Sort"], nodes
    scans = agent_scans(nodes)
    assert scans and all("agent" in n.get("Index Cond", "") for n in scans), scans


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_the_projects_page_of_one_agent_walks_an_index_of_the_calls_to_it(key, calls):
    filters = ProjectLogFilters(calls=LogFilters(agent="payroll-admin"))
    records = filters.apply(project_calls(key.project))
    nodes = plan_nodes(records.order_by(*NEWEST_FIRST)[: PAGE_SIZE + 1])
    assert not [n for n in nodes if n["Node Type"] == "Sort"], nodes
    scans = agent_scans(nodes)
    assert scans and all("agent" in n.get("Index Cond", "") for n in scans), scans


def test_the_project_form_reads_the_agent_too(key):
    form = ProjectLogFilterForm({"agent": "payroll-admin"}, project=key.project)
    assert form.is_valid()
    assert form.project_filters().calls.agent == "payroll-admin"
