"""How many agents one project may have (settings.MAX_AGENTS_PER_PROJECT): a new name past
the cap is refused in the contract's envelope, exactly, even when two arrive at once."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client

from agents.models import Agent
from audit.models import AuditEvent
from tests.api.assertions import assert_error, assert_ok
from tests.conftest import (
    Api,
    the_second_waits_for_the_first,
)


def fill(project, up_to: int) -> None:
    """The project's agents (it starts with my-agent) made up to `up_to`."""
    have = Agent.objects.filter(project=project).count()
    Agent.objects.bulk_create(
        Agent(project=project, name=f"filler-{n}") for n in range(up_to - have)
    )


def test_a_new_agent_past_the_cap_is_refused_and_nothing_is_made(api, project, settings):
    settings.MAX_AGENTS_PER_PROJECT = 3
    fill(project, 2)
    assert_ok(api.send("PUT", "/v1/agents/third", {}), 201)
    error = assert_error(api.send("PUT", "/v1/agents/fourth", {}), 400, "invalid_request")
    assert "3 agents" in error["message"]
    assert not Agent.objects.filter(project=project, name="fourth").exists()
    assert not AuditEvent.objects.filter(target_label="fourth").exists()
    assert Agent.objects.filter(project=project).count() == 3


def test_an_agent_at_the_cap_can_still_be_updated(api, project, settings):
    settings.MAX_AGENTS_PER_PROJECT = 3
    fill(project, 3)
    body = assert_ok(api.send("PUT", "/v1/agents/my-agent", {"description": "New words"}))
    assert body["description"] == "New words"


def test_the_cap_is_per_project(api, project, make_user, settings):
    settings.MAX_AGENTS_PER_PROJECT = 2
    other = make_user(email="other@example.com").memberships.get().project
    fill(other, 2)
    assert_ok(api.send("PUT", "/v1/agents/second", {}), 201)


def test_the_cap_is_in_the_api_description(client, settings):
    description = client.get("/v1/openapi.json").json()
    deploy = description["paths"]["/v1/agents/{name}"]["put"]
    assert f"at most {settings.MAX_AGENTS_PER_PROJECT:,} agents" in deploy["description"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("second", "answers"), [("two", [201, 400]), ("one", [201, 200])])
def test_two_new_agents_at_once_one_below_the_cap_make_one(
    api_key, project, monkeypatch, settings, second, answers
):
    """The first has counted and is about to write; the second waits for it on the
    project's row, then counts it. The same name twice is one agent made, then updated."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: concurrency is shown on PostgreSQL.")
    settings.MAX_AGENTS_PER_PROJECT = 3
    fill(project, 2)
    responses = {}

    def deploy(name: str, which: str) -> None:
        responses[which] = Api(Client(), api_key[1]).send("PUT", f"/v1/agents/{name}", {})

    second_failures = the_second_waits_for_the_first(
        monkeypatch,
        Agent.objects,
        "update_or_create",
        lambda: deploy("one", "first"),
        lambda: deploy(second, "second"),
    )
    assert second_failures == []
    assert [responses["first"].status_code, responses["second"].status_code] == answers
    if answers[1] == 400:
        assert_error(responses["second"], 400, "invalid_request")
    assert Agent.objects.filter(project=project).count() == 3


@pytest.mark.parametrize("name", ["a" * 5000, "a%00b", "%C2%B2", "-1", "9" * 40])
def test_an_odd_name_at_the_cap_is_answered_in_the_envelope(api, project, settings, name):
    settings.MAX_AGENTS_PER_PROJECT = 1
    response = api.send("PUT", f"/v1/agents/{name}", {})
    assert response.status_code in (400, 404)
    assert response.json()["error"]["status"] == response.status_code


@pytest.mark.django_db(transaction=True)
def test_two_deploys_of_one_new_name_at_once_audit_only_what_the_second_changed(
    api_key, project, monkeypatch
):
    """The second found no agent before it waited for the first on the project's row:
    it was audited as changing every field of an agent the first had just made."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: concurrency is shown on PostgreSQL.")

    def deploy(description: str) -> None:
        body = {"description": description, "config": {"a": 1}}
        Api(Client(), api_key[1]).send("PUT", "/v1/agents/twice", body)

    second_failures = the_second_waits_for_the_first(
        monkeypatch,
        Agent.objects,
        "update_or_create",
        lambda: deploy("first"),
        lambda: deploy("second"),
    )
    assert second_failures == []
    events = AuditEvent.objects.filter(target_label="twice").order_by("id")
    assert [(e.action, e.metadata["changed"]) for e in events] == [
        ("agent.created", ["kind", "description", "config"]),
        ("agent.updated", ["description"]),
    ]
