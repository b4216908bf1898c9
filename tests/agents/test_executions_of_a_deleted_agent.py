"""An agent deleted while its calls are in flight: each was answered, with an execution
id, before its row was written (agents/runtime.py). The row is kept, as the executions
of an agent deleted later are (Execution.agent is SET_NULL): the log outlives its agent."""

from __future__ import annotations

import pytest

from agents.models import Agent, Execution
from core import write_behind
from core.write_behind import StreamIngest
from tests.api.assertions import assert_ok


@pytest.fixture
def deferred(settings):
    """As in production: records are written after the answer, not before it. Nothing
    is left in this process's buffer for the next test."""
    settings.USAGE_FLUSH_SECONDS = 3600
    yield
    with write_behind.buffer._lock:
        write_behind.buffer._records.clear()


def invoke_then_delete(api, project) -> set[str]:
    """Two calls answered, one to an agent deleted before either row is written."""
    assert_ok(api.send("PUT", "/v1/agents/short-lived", {}), status=201)
    answered = {
        assert_ok(api.post(f"/v1/agents/{name}/invoke", {"prompt": "hi"}))["execution"]["id"]
        for name in ("short-lived", "my-agent")
    }
    Agent.objects.filter(project=project, name="short-lived").delete()
    return answered


# Committed for real: a foreign key is checked at the commit.
@pytest.mark.django_db(transaction=True)
def test_the_buffer_writes_the_execution_of_an_agent_deleted_meanwhile(api, project, deferred):
    answered = invoke_then_delete(api, project)

    write_behind.buffer.flush()

    assert set(Execution.objects.values_list("public_id", flat=True)) == answered
    gone = Execution.objects.get(agent_name="short-lived")
    assert (gone.agent, gone.project) == (None, project)


@pytest.mark.django_db(transaction=True)
def test_the_ingest_writes_the_execution_of_an_agent_deleted_meanwhile(
    api, project, redis_store, deferred
):
    answered = invoke_then_delete(api, project)

    stats = StreamIngest(consumer="test").run(once=True)

    assert set(Execution.objects.values_list("public_id", flat=True)) == answered
    assert Execution.objects.get(agent_name="short-lived").agent is None
    assert stats.dropped == 0


@pytest.mark.django_db(transaction=True)
def test_an_execution_of_a_project_that_is_gone_is_dropped_alone(api, project, deferred):
    """Nobody could read it; the other executions of its batch are written."""
    answered = invoke_then_delete(api, project)
    write_behind.defer(
        "execution",
        {
            "public_id": "exec_nobody",
            "project_id": project.pk + 1000,
            "agent_id": None,
            "agent_name": "my-agent",
            "type": "invoke",
            "status": "success",
            "duration_us": 1,
            "input": {"prompt": "hi"},
            "output": "hi",
            "api_key_id": None,
            "created_at": "2026-01-01T00:00:00+00:00",
        },
    )

    write_behind.buffer.flush()

    assert set(Execution.objects.values_list("public_id", flat=True)) == answered
