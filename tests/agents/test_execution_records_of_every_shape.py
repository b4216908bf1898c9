"""`ingest_usage` against execution records our API never writes (anyone with the Redis
password can add one to the stream): one that cannot be written, or could be written but
not read back, is dropped alone; the project's execution log answers as before."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from agents.models import Agent, Execution
from core import write_behind
from core.write_behind import StreamIngest
from tests.api.assertions import assert_ok


def execution_record(project, public_id: str, **changes: object) -> bytes:
    agent = Agent.objects.get(project=project, name="my-agent")
    payload = {
        "public_id": public_id,
        "project_id": project.pk,
        "agent_id": agent.pk,
        "agent_name": agent.name,
        "type": "invoke",
        "status": "success",
        "duration_us": 1,
        "input": {"prompt": "hi", "context": {}, "serverContext": {}},
        "output": "hi",
        "api_key_id": None,
        "created_at": timezone.now().isoformat(),
        **changes,
    }
    return json.dumps(["execution", payload]).encode()


# Committed for real, as the ingest writes outside any transaction.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "created_at",
    [
        # In range as written, out of Python's range once in UTC: PostgreSQL keeps both
        # (year 10000; 1 BC), and every read of a page holding one was a 500.
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+14:00",
        # No time zone: which moment it names depends on the database's.
        "2026-01-01T00:00:00",
    ],
)
def test_an_execution_at_a_time_that_cannot_be_read_back_is_dropped_alone(
    api, project, redis_store, created_at
):
    stream = write_behind.stream_key()
    redis_store.round_trip(
        ("XADD", stream, "*", "r", execution_record(project, "exec_before")),
        ("XADD", stream, "*", "r", execution_record(project, "exec_odd", created_at=created_at)),
        ("XADD", stream, "*", "r", execution_record(project, "exec_after")),
    )

    stats = StreamIngest(consumer="test").run(once=True)

    assert set(Execution.objects.values_list("public_id", flat=True)) == {
        "exec_before",
        "exec_after",
    }
    assert (stats.written, stats.dropped) == (2, 1)
    page = assert_ok(api.get("/v1/execution-logs"))
    assert [e["id"] for e in page["data"]] == ["exec_after", "exec_before"]


@pytest.mark.parametrize("whose", ["agent", "key"])
def test_an_execution_naming_another_projects_agent_or_key_is_dropped_not_shown(
    api, project, redis_store, make_project, make_key, make_user, whose
):
    """The API takes an execution's project from its caller's token. An entry made by hand
    that names this project with another project's agent (or key) was written as this
    project's execution, tied to the other's agent: its row among that agent's
    executions, and its name in this project's execution log."""
    elsewhere = make_project(make_user(email="them@example.com"), name="Theirs")
    their_agent = Agent.objects.get(project=elsewhere, name="my-agent")
    their_agent.name = "their-secret-agent"
    their_agent.save(update_fields=["name"])
    theirs, _ = make_key(elsewhere, name="Their billing key")
    stolen: dict[str, object] = (
        {"agent_id": their_agent.pk, "agent_name": their_agent.name}
        if whose == "agent"
        else {"api_key_id": theirs.pk}
    )
    stream = write_behind.stream_key()
    redis_store.round_trip(
        ("XADD", stream, "*", "r", execution_record(project, "exec_before")),
        ("XADD", stream, "*", "r", execution_record(project, "exec_theirs", **stolen)),
    )

    stats = StreamIngest(consumer="test").run(once=True)

    assert list(Execution.objects.values_list("public_id", flat=True)) == ["exec_before"]
    assert stats.dropped == 1
    assert not their_agent.executions.exists()
    page = assert_ok(api.get("/v1/execution-logs"))
    assert [e["id"] for e in page["data"]] == ["exec_before"]


# Committed for real, as the ingest writes outside any transaction.
@pytest.mark.django_db(transaction=True)
def test_an_execution_nested_too_deep_to_be_read_back_is_dropped_alone(api, project, redis_store):
    """Python reads nesting some 9,990 levels deep, and PostgreSQL keeps it; but the
    execution log reads its rows deeper in the stack than the ingest wrote them: one
    nested 9,960 levels deep (made by hand: the API refuses a body deeper than 64) was
    written, and every page of the project's execution log holding it was a 500."""
    deep = execution_record(project, "exec_deep", output="OUTPUT")
    deep = deep.replace(b'"OUTPUT"', b"[" * 9_960 + b"]" * 9_960)
    stream = write_behind.stream_key()
    redis_store.round_trip(
        ("XADD", stream, "*", "r", execution_record(project, "exec_before")),
        ("XADD", stream, "*", "r", deep),
    )

    stats = StreamIngest(consumer="test").run(once=True)

    assert list(Execution.objects.values_list("public_id", flat=True)) == ["exec_before"]
    assert stats.dropped == 1
    page = assert_ok(api.get("/v1/execution-logs"))
    assert [e["id"] for e in page["data"]] == ["exec_before"]


# Committed for real, as the ingest writes outside any transaction.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("duration", ["slow", float("inf"), 2**31], ids=repr)
def test_an_execution_whose_duration_is_no_whole_number_the_log_shows_is_dropped_alone(
    api, project, redis_store, duration
):
    """An execution's duration is a whole number of microseconds, as the API measures it.
    SQLite keeps whatever it is given: one made by hand as "slow" made every page of the
    project's execution log holding it a 500, and one of Infinity put `Infinity` in the
    log's JSON, which no strict reader takes. (PostgreSQL refused most of them already.)"""
    stream = write_behind.stream_key()
    redis_store.round_trip(
        ("XADD", stream, "*", "r", execution_record(project, "exec_before")),
        ("XADD", stream, "*", "r", execution_record(project, "exec_odd", duration_us=duration)),
    )

    stats = StreamIngest(consumer="test").run(once=True)

    assert list(Execution.objects.values_list("public_id", flat=True)) == ["exec_before"]
    assert stats.dropped == 1
    page = api.get("/v1/execution-logs")
    assert page.status_code == 200 and b"Infinity" not in page.content
