"""An endpoint's newest delivery (the webhook list's status column) and its delivery log
are read from an index in their order, (endpoint, created_at, id), newest first.

Without the id in it, PostgreSQL had no index in the order asked for and walked the
delivery table's age index from the newest row of any tenant, skipping every other
endpoint's: a project with one endpoint and no deliveries waited on another's 200,000
deliveries (72 ms for its list here, three such reads per endpoint; seconds at millions).
"""

from __future__ import annotations

import pytest
from django.db import connection

from tests.plans import plan_nodes
from webhooks.models import WebhookDelivery, WebhookEndpoint


def delivery_scans(nodes: list[dict]) -> list[dict]:
    return [n for n in nodes if n.get("Relation Name") == "webhooks_webhookdelivery"]


def delivery_sorts(nodes: list[dict]) -> list[dict]:
    """Sorts of deliveries (the endpoints' own, ten at most, may be sorted)."""
    return [
        n
        for n in nodes
        if "Sort" in n["Node Type"]
        and not any("webhookendpoint" in key for key in n.get("Sort Key", []))
    ]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_each_endpoints_newest_delivery_is_one_step_of_an_index_in_its_order(
    project, make_endpoint, make_project, make_user
):
    endpoint, _ = make_endpoint(project, "https://hooks.example.com/a")
    busy, _ = make_endpoint(make_project(make_user(), name="Busy"), "https://hooks.example.com/b")
    # Deliveries enough that the order matters, another tenant's beside them, and
    # statistics that know of them (as autovacuum's would): on a table of a few rows every
    # plan costs about the same, and which one the planner took depended on what other
    # tests had written and rolled back before.
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(endpoint=e, event_id=f"evt_{e.pk}_{n}", event_type="t", payload={})
        for e in (endpoint, busy)
        for n in range(2_000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE webhooks_webhookdelivery")
        cursor.execute("ANALYZE webhooks_webhookendpoint")

    listed = WebhookEndpoint.objects.for_project(project).with_last_delivery()
    nodes = plan_nodes(listed)
    assert not delivery_sorts(nodes), nodes
    scans = delivery_scans(nodes)
    assert len(scans) == 3, scans
    assert all(n["Node Type"] in ("Index Scan", "Index Only Scan") for n in scans), scans
    assert all("endpoint_id" in n.get("Index Cond", "") for n in scans), scans
    assert listed.get().last_at is not None

    log = WebhookDelivery.objects.filter(endpoint=endpoint).order_by("-created_at", "-id")[:51]
    nodes = plan_nodes(log)
    assert not delivery_sorts(nodes), nodes
    assert all("endpoint_id" in n.get("Index Cond", "") for n in delivery_scans(nodes)), nodes
