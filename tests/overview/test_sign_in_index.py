"""The last sign-ins on a project's front page (and a sign-in's "from a new network?" and
"the first time?") read a person's sign-ins from an index of sign-ins alone.

Asked for "the members' newest `user.signed_in` events", PostgreSQL had no index that
knew the action: it read the whole audit trail, every tenant's (a parallel seq scan of
1,000,000 events, 75 ms on every owner's front page of even a small project, growing
with everyone's history), or, given only the actor's index, every event of each member.
Each member's newest is now one step of that index.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts import sessions
from audit.log import audit_record
from audit.models import AuditEvent
from overview.health import project_health
from tests.plans import plan_nodes


def audit_scans(sql: str) -> list[dict]:
    return [n for n in plan_nodes(sql) if n.get("Relation Name") == "accounts_auditevent"]


def audit_queries(captured) -> list[str]:
    return [q["sql"] for q in captured if '"accounts_auditevent"' in q["sql"]]


def only_sign_ins_read(scans: list[dict]) -> bool:
    """Each scan walks an index by the actor and reads no event that is not a sign-in."""
    return bool(scans) and all(
        n["Node Type"] in ("Index Scan", "Index Only Scan")
        and "actor_id" in n.get("Index Cond", "")
        and "action" not in n.get("Filter", "")
        for n in scans
    )


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_the_front_pages_last_sign_ins_read_only_sign_ins(client, user, project):
    client.post(
        reverse("accounts:login"),
        {"username": user.email, "password": "correct horse battery staple"},
    )
    for _ in range(3):
        audit_record(action="api_key.renamed", actor=user, project=project, target=user)

    with CaptureQueriesContext(connection) as captured:
        health = project_health(project=project, with_sign_ins=True)
    [ada] = health.sign_ins
    assert ada.at == AuditEvent.objects.filter(action="user.signed_in").get().created_at
    [query] = audit_queries(captured)
    assert only_sign_ins_read(audit_scans(query)), audit_scans(query)
    # Each member's newest sign-in is one step of the index, not all their sign-ins
    # gathered and their latest picked.
    nodes = plan_nodes(query)
    assert not [n for n in nodes if n["Node Type"] == "Aggregate"], nodes


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_a_sign_ins_looks_at_earlier_sign_ins_read_only_sign_ins(user):
    with CaptureQueriesContext(connection) as captured:
        assert not sessions._has_signed_in_before(user)
        assert sessions._signed_in_from_before(user, "203.0.113.9") is False
    queries = audit_queries(captured)
    assert len(queries) == 2
    for query in queries:
        assert only_sign_ins_read(audit_scans(query)), audit_scans(query)
