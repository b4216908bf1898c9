"""A personal access token's call log (its owner's page, /account/tokens/<id>/usage/) is
read a page at a time from an index in its own order, as a key's and a project's are:
a CI token calls day and night, and its page must not read and sort every call it ever
made (2 million of them took its page to 3 s here, and it grows with them)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apikeys.services import client_token_create, personal_token_create
from tests.conftest import usage_call
from tests.plans import assert_walked_in_order_reading, log_rows_read, log_scans, plan_nodes
from usage.forms import PersonalTokenLogFilterForm
from usage.key_usage import NEWEST_FIRST, OLDEST_FIRST, PAGE_SIZE
from usage.personal_token_usage import pat_calls
from usage.writer import usage_write


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_a_personal_tokens_log_page_walks_an_index_in_its_order_without_sorting(user, project):
    pat, _ = personal_token_create(user=user, name="CI", expires_at=None)
    now = timezone.now()
    usage_write(
        [usage_call(now - timedelta(minutes=i), pat=pat, project=project) for i in range(3)]
    )

    page = pat_calls(pat).order_by(*NEWEST_FIRST)[: PAGE_SIZE + 1]
    nodes = plan_nodes(page)
    assert not [n for n in nodes if n["Node Type"] == "Sort"], nodes
    scans = log_scans(nodes)
    assert scans and all(n["Node Type"] == "Index Scan" for n in scans), scans
    assert len(list(page)) == 3

    # The week's tallies read the week, not the token's whole history.
    week = pat_calls(pat).filter(created_at__gte=now - timedelta(days=7)).values("pk")
    scans = log_scans(plan_nodes(week))
    assert scans and all("created_at" in n.get("Index Cond", "") for n in scans), scans


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_its_client_tokens_calls_are_read_without_passing_over_its_own(user, project, make_key):
    """A CI token that minted a client token or two among its many calls of its own: its
    log with Caller "Its client tokens" read every call of its own to find theirs (300,000
    of them took the page to 0.3 s). It walks an index of those calls alone, in order,
    while a key's client tokens make many more."""
    pat, _ = personal_token_create(user=user, name="CI", expires_at=None)
    minted, _ = client_token_create(project=project, personal_token=pat, context={})
    key, _ = make_key(project)
    keys_token, _ = client_token_create(project=project, api_key=key, context={})
    now = timezone.now()
    usage_write(
        [usage_call(now - timedelta(seconds=i), pat=pat, project=project) for i in range(1, 150)]
        + [usage_call(now - timedelta(seconds=i), client_token=keys_token) for i in range(150)]
        + [usage_call(now - timedelta(days=d, hours=1), client_token=minted) for d in (0, 3)]
    )
    form = PersonalTokenLogFilterForm({"caller": "client_tokens"})
    assert form.is_valid()
    records = form.filters().apply(pat_calls(pat).select_related("project", "client_token"))
    nodes = plan_nodes(records.order_by(*NEWEST_FIRST)[: PAGE_SIZE + 1], analyze=True)
    assert not [n for n in nodes if n["Node Type"] == "Sort"], nodes
    assert log_rows_read(nodes) == 2, log_scans(nodes)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_its_own_calls_are_read_without_passing_over_its_client_tokens(user, project):
    """A token whose client tokens make most of its calls: "The token itself" walked every
    call of the token newest first and passed over its client tokens' to find its own
    (400,000 of them read, 0.25 s; a million, 0.74 s, and as long again for the export's
    first rows). The page and its CSV export walk an index of the token's own calls in
    the log's order, and read only those, while another token makes many more of its own."""
    pat, _ = personal_token_create(user=user, name="Deploys", expires_at=None)
    minted, _ = client_token_create(project=project, personal_token=pat, context={})
    other, _ = personal_token_create(user=user, name="CI", expires_at=None)
    now = timezone.now()
    usage_write(
        [usage_call(now - timedelta(seconds=i), client_token=minted) for i in range(1, 150)]
        + [usage_call(now - timedelta(seconds=i), pat=other, project=project) for i in range(150)]
        + [usage_call(now - timedelta(days=d, hours=1), pat=pat, project=project) for d in (0, 3)]
    )
    form = PersonalTokenLogFilterForm({"caller": "token"})
    assert form.is_valid()
    page = form.filters().apply(pat_calls(pat).select_related("project", "client_token"))
    export = form.filters().apply(pat_calls(pat))  # what personal_token_usage_export reads
    assert_walked_in_order_reading(
        [page, export], [NEWEST_FIRST, OLDEST_FIRST], rows=2, first=PAGE_SIZE + 1
    )


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
@pytest.mark.parametrize(
    "query",
    [
        {"outcome": "server_error"},
        {"status": "500"},
    ],
)
def test_its_failed_calls_are_read_without_the_logs_other_failures_or_its_successes(
    user, project, make_key, query
):
    """A PAT's log narrowed to failed calls (an error outcome, a 4xx/5xx status) walked the
    project failed-calls index with no project to hold it to, so read every failed call
    in the log, every tenant's, and sorted them (32,000 of them, 0.3-0.38 s); with sorts
    ruled out it walks the token's calls and passes over its successes. Its page and its
    CSV export walk an index of the token's failed calls in the log's order, and read
    only those, while a key fails far more often and the token mostly succeeds."""
    pat, _ = personal_token_create(user=user, name="CI", expires_at=None)
    key, _ = make_key(project)
    now = timezone.now()
    usage_write(
        [usage_call(now - timedelta(seconds=i), pat=pat, project=project) for i in range(1, 150)]
        + [usage_call(now - timedelta(seconds=i), key=key, status=500) for i in range(150)]
        + [
            usage_call(now - timedelta(days=d, hours=1), pat=pat, project=project, status=500)
            for d in (0, 3)
        ]
    )
    form = PersonalTokenLogFilterForm(query)
    assert form.is_valid(), form.errors
    page = form.filters().apply(pat_calls(pat).select_related("project", "client_token"))
    export = form.filters().apply(pat_calls(pat))  # what personal_token_usage_export reads
    assert_walked_in_order_reading(
        [page, export], [NEWEST_FIRST, OLDEST_FIRST], rows=2, first=PAGE_SIZE + 1
    )
