"""What a page of the execution log reads on PostgreSQL: the executions it shows, not
every execution of the project newer than them."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import Agent, Execution
from tests.api.assertions import assert_ok
from tests.conftest import Api
from tests.plans import plan_nodes
from tests.plans import rows_read as rows_taken

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's planner and EXPLAIN ANALYZE"
)


def executions(project, name: str, count: int) -> None:
    agent, _ = Agent.objects.get_or_create(project=project, name=name)
    Execution.objects.bulk_create(
        Execution(
            project=project,
            agent=agent,
            agent_name=name,
            type=Execution.Type.INVOKE,
            status=Execution.Status.SUCCESS,
            created_at=timezone.now(),
        )
        for _ in range(count)
    )


def rows_read(api, path: str, **params: str) -> tuple[int, dict]:
    """How many execution rows the page's statement read (kept or filtered out), and
    the page."""
    with CaptureQueriesContext(connection) as captured:
        page = assert_ok(api.get(path, **params))
    (sql,) = [q["sql"] for q in captured.captured_queries if "agents_execution" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE agents_execution")  # as autovacuum would have, at this size
    return rows_taken(plan_nodes(sql, analyze=True, bitmap_scans=True), "agents_execution"), page


def test_a_page_of_one_agents_executions_reads_only_that_agents(api, project):
    """Asked for a rarely used agent (or by a key scoped to it), the page read every
    execution of the project's busy agents newer than the rare one's, and each read of
    a busy project ran into the statement timeout: a 503, every time."""
    executions(project, "rare", 3)
    executions(project, "busy", 500)

    read, page = rows_read(api, "/v1/execution-logs", agent="rare", limit="2")

    assert [e["agent"] for e in page["data"]] == ["rare", "rare"]
    assert read <= 3


def test_a_key_scoped_to_one_agent_reads_only_that_agents_executions(project, make_key):
    executions(project, "rare", 3)
    executions(project, "busy", 500)
    _, secret = make_key(project, name="Rare only", agent_names=["rare"])

    read, page = rows_read(Api(Client(), secret), "/v1/execution-logs", limit="2")

    assert [e["agent"] for e in page["data"]] == ["rare", "rare"]
    assert read <= 3
