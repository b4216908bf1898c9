"""A project's audit page filtered by who acted (a whole address) or by the address it
came from is read a page at a time from an index in its order, as the unfiltered page is.

Without one, PostgreSQL walked the trail newest first and kept the events that matched:
an actor or address with no events among the project's 1,000,000 read all of them (and,
by the trail's time index, every other tenant's too): 360 ms and 170 ms here, growing
with the trail. An investigation asks exactly that: "what did this person, this address
do?"
"""

from __future__ import annotations

import pytest
from django.db import connection

from audit.log import audit_record
from audit.models import AuditEvent
from audit.reads import NEWEST_FIRST, PAGE_SIZE, AuditFilters
from tests.plans import plan_nodes


def audit_scans(nodes: list[dict]) -> list[dict]:
    return [n for n in nodes if n.get("Relation Name") == "accounts_auditevent"]


def assert_walks_an_index_in_order(page, column: str) -> None:
    nodes = plan_nodes(page)
    assert not [n for n in nodes if "Sort" in n["Node Type"]], nodes
    scans = audit_scans(nodes)
    assert scans and all(n["Node Type"] == "Index Scan" for n in scans), scans
    assert all(column in n.get("Index Cond", "") for n in scans), scans


@pytest.fixture
def trail(user, project):
    """A few events of Ada's from one address among many of someone else's, with the
    planner told so (otherwise it takes the project for a row or two, where sorting them
    costs nothing, whichever index there is)."""
    AuditEvent.objects.bulk_create(
        AuditEvent(
            project=project,
            actor_email="grace@example.com",
            action="project.renamed",
            ip_address="198.51.100.1",
        )
        for _ in range(500)
    )
    for _ in range(3):
        audit_record(action="project.renamed", actor=user, project=project, ip="203.0.113.9")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE accounts_auditevent")
    return AuditEvent.objects.for_project(project)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_a_projects_events_by_one_actor_are_walked_in_order_from_an_index(user, trail):
    page = AuditFilters(actor=user.email.upper()).apply(trail).order_by(*NEWEST_FIRST)
    assert_walks_an_index_in_order(page[: PAGE_SIZE + 1], "actor_email")
    assert page.count() == trail.filter(actor=user).count() >= 3


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_a_projects_events_from_one_address_are_walked_in_order_from_an_index(trail):
    page = AuditFilters(ip="203.0.113.9").apply(trail).order_by(*NEWEST_FIRST)
    assert_walks_an_index_in_order(page[: PAGE_SIZE + 1], "ip_address")
    assert len(page) == 3
