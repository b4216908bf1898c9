"""The /v1 agent endpoints end to end, through the built-in echo agent."""

from __future__ import annotations

import datetime
import re

import pytest
from django.utils import timezone

from agents.api import MAX_CONFIG_BYTES
from agents.models import Agent, Execution
from apikeys.services import personal_token_create
from audit.models import AuditEvent
from tests.api.assertions import assert_error, assert_ok

INVOKE = "/v1/agents/my-agent/invoke"
CHAT = "/v1/agents/my-agent/chat"

# Letters of both cases, digits, '-' and '_': where byte order and a database collation
# could disagree, so the cursor must follow whatever order the database lists in.
NAMES = [
    "alpha",
    "Alpha",
    "ALPHA2",
    "b",
    "B",
    "beta-2",
    "beta_1",
    "beta1",
    "0-zero",
    "9lives",
    "_under",
    "-dash",
    "zz",
    "Zeta",
    "x-y_z",
    "my-agent-2",
]


# invoke


def test_invoke_with_a_prompt_answers_with_the_prompt_and_records_the_execution(
    api, api_key, project
):
    body = assert_ok(api.post(INVOKE, {"prompt": "hello"}))
    assert body["output"] == "hello"
    assert set(body["execution"]) == {"id", "status", "durationMs"}
    assert re.fullmatch(r"exec_[0-9A-Za-z]+", body["execution"]["id"])
    assert body["execution"]["status"] == "success"
    assert isinstance(body["execution"]["durationMs"], int | float)
    assert isinstance(body["execution"]["durationMs"], float)

    execution = Execution.objects.get()
    assert execution.public_id == body["execution"]["id"]
    assert (execution.project, execution.agent_name, execution.type) == (
        project,
        "my-agent",
        Execution.Type.INVOKE,
    )
    assert execution.api_key_id == api_key[0].pk
    assert execution.input["prompt"] == "hello"
    assert execution.input["context"] == {}


def test_invoke_with_input_and_context_answers_with_the_input(api):
    given = {"order": 1234, "items": ["a", "b"], "nested": {"ok": True}}
    context = {"userId": "u_42", "plan": "pro"}
    body = assert_ok(api.post(INVOKE, {"input": given, "context": context}))
    assert body["output"] == given
    execution = Execution.objects.get()
    assert execution.input["input"] == given
    assert execution.input["context"] == context
    assert "prompt" not in execution.input


def test_invoke_with_both_a_prompt_and_an_input_is_refused_not_half_ignored(api):
    """The contract's body is one or the other; the input was dropped without a word."""
    error = assert_error(
        api.post(INVOKE, {"prompt": "a", "input": {"x": 1}}), 400, "invalid_request"
    )
    assert "'prompt'" in error["message"] and "'input'" in error["message"]
    assert not Execution.objects.exists()


def test_invoke_with_an_empty_prompt_is_allowed(api):
    assert assert_ok(api.post(INVOKE, {"prompt": ""}))["output"] == ""


def test_invoke_keeps_unicode_as_it_was_sent(api):
    text = "héllo → 世界 🎉"
    assert assert_ok(api.post(INVOKE, {"prompt": text}))["output"] == text


# chat


def test_chat_answers_with_the_messages_and_the_assistants_reply(api):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "first"},
        {"role": "user", "content": "second"},
    ]
    body = assert_ok(api.post(CHAT, {"messages": messages, "context": {"tenant": "t1"}}))
    assert body["messages"] == [*messages, {"role": "assistant", "content": "second"}]
    assert re.fullmatch(r"exec_[0-9A-Za-z]+", body["execution"]["id"])
    execution = Execution.objects.get()
    assert execution.type == Execution.Type.CHAT
    assert execution.input["messages"] == messages
    assert execution.input["context"] == {"tenant": "t1"}


def test_chat_drops_fields_a_message_should_not_have(api):
    messages = [{"role": "user", "content": "hi", "name": "x", "secret": "y"}]
    body = assert_ok(api.post(CHAT, {"messages": messages}))
    assert body["messages"][0] == {"role": "user", "content": "hi"}


# list


@pytest.fixture
def many_agents(project):
    for name in NAMES:
        Agent.objects.create(project=project, name=name)
    return ["my-agent", *NAMES]


def walk(api, path: str, limit: int, **params) -> list[dict]:
    """Every page of a list, following nextCursor until hasMore is false."""
    pages, cursor = [], None
    while True:
        query = {"limit": str(limit), **params}
        if cursor:
            query["cursor"] = cursor
        page = assert_ok(api.get(path, **query))
        assert set(page) == {"data", "hasMore", "nextCursor"}
        pages.append(page)
        assert len(page["data"]) <= limit
        if not page["hasMore"]:
            assert page["nextCursor"] is None
            return pages
        assert len(page["data"]) == limit
        cursor = page["nextCursor"]
        assert len(pages) < 100, "the cursor does not advance"


@pytest.mark.parametrize("limit", [1, 3, 5, 17, 100])
def test_list_pages_through_every_agent_exactly_once(api, many_agents, limit):
    pages = walk(api, "/v1/agents", limit)
    names = [agent["name"] for page in pages for agent in page["data"]]
    assert sorted(names) == sorted(many_agents)
    assert len(names) == len(set(names))
    # The order is stable: the pages concatenated are the single page listing.
    assert names == [a["name"] for a in assert_ok(api.get("/v1/agents", limit="100"))["data"]]


def test_list_defaults_to_twenty_agents(api, project):
    for i in range(25):
        Agent.objects.create(project=project, name=f"agent-{i:02}")
    page = assert_ok(api.get("/v1/agents"))
    assert len(page["data"]) == 20
    assert page["hasMore"] is True


def test_list_shows_what_get_shows(api):
    listed = assert_ok(api.get("/v1/agents"))["data"]
    assert listed == [assert_ok(api.get("/v1/agents/my-agent"))]


# get


def test_get_answers_the_agents_configuration(api, project):
    Agent.objects.create(
        project=project, name="support", description="Answers tickets", config={"temp": 0.2}
    )
    body = assert_ok(api.get("/v1/agents/support"))
    assert set(body) == {"name", "kind", "description", "config", "createdAt", "updatedAt"}
    assert (body["name"], body["kind"], body["description"], body["config"]) == (
        "support",
        "echo",
        "Answers tickets",
        {"temp": 0.2},
    )
    assert datetime.datetime.fromisoformat(body["createdAt"]).tzinfo is not None


def test_agent_names_are_case_sensitive(api, project):
    Agent.objects.create(project=project, name="Support")
    assert_error(api.get("/v1/agents/support"), 404, "agent_not_found")
    assert assert_ok(api.get("/v1/agents/Support"))["name"] == "Support"


# PUT: deploy, then update


def test_put_creates_an_agent_with_201_then_updates_it_with_200(api, project):
    first = {"kind": "echo", "description": "v1", "config": {"model": "a"}}
    created = assert_ok(api.send("PUT", "/v1/agents/support", first), status=201)
    assert (created["name"], created["description"], created["config"]) == (
        "support",
        "v1",
        {"model": "a"},
    )
    agent = Agent.objects.get(project=project, name="support")

    second = {"kind": "echo", "description": "v2", "config": {"model": "b"}}
    updated = assert_ok(api.send("PUT", "/v1/agents/support", second), status=200)
    assert (updated["description"], updated["config"]) == ("v2", {"model": "b"})
    assert updated["createdAt"] == created["createdAt"]
    assert updated["updatedAt"] >= created["updatedAt"]
    assert Agent.objects.filter(project=project, name="support").count() == 1
    agent.refresh_from_db()
    assert (agent.description, agent.config) == ("v2", {"model": "b"})
    assert assert_ok(api.get("/v1/agents/support")) == updated


def test_a_new_agent_was_last_updated_when_it_was_created(api):
    """GitHub's and most APIs' rule: a new object's updatedAt is its createdAt. It was
    read from the clock first and came out some microseconds before createdAt, so a
    client asking "changed since it was made?" (updatedAt != createdAt) was told yes."""
    created = assert_ok(api.send("PUT", "/v1/agents/support", {"kind": "echo"}), status=201)
    assert created["updatedAt"] == created["createdAt"]
    assert assert_ok(api.get("/v1/agents/support"))["updatedAt"] == created["createdAt"]
    starter = assert_ok(api.get("/v1/agents/my-agent"))
    assert starter["updatedAt"] == starter["createdAt"]


def test_a_deploy_is_audited_with_what_changed_and_the_token_that_did_it(
    api, api_key, project, user
):
    api.send("PUT", "/v1/agents/support", {"description": "v1", "config": {"a": 1}})
    api.send("PUT", "/v1/agents/support", {"description": "v1", "config": {"a": 2}})
    api.send("PUT", "/v1/agents/support", {"description": "v1", "kind": "nope"})  # refused
    events = AuditEvent.objects.filter(project=project, action__startswith="agent.")
    created, updated = events.order_by("id")
    assert (created.action, created.target_label, created.actor) == (
        "agent.created",
        "support",
        None,
    )
    assert created.metadata == {
        "kind": "echo",
        "changed": ["kind", "description", "config"],
        "via": str(api_key[0]),
    }
    assert (updated.action, updated.metadata["changed"]) == ("agent.updated", ["config"])

    pat, secret = personal_token_create(user=user, name="Deployer")
    api.send("PUT", "/v1/agents/support", {}, token=secret, headers={"X-Project": project.slug})
    by_person = events.order_by("id").last()
    assert (by_person.actor, by_person.metadata["via"]) == (user, str(pat))
    assert by_person.metadata["changed"] == ["description", "config"]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"tools": True}, {"tools": 1}),
        ({"tools": [False]}, {"tools": [0]}),
        ({"retries": 0}, {"retries": False}),
    ],
)
def test_a_config_changed_between_a_boolean_and_a_number_is_audited_as_changed(
    api, project, before, after
):
    """Python takes True for 1 and False for 0; JSON, and the agent reading its config,
    do not: the deploy that turned one into the other was audited as changing nothing."""
    api.send("PUT", "/v1/agents/support", {"config": before})
    assert_ok(api.send("PUT", "/v1/agents/support", {"config": after}))
    updated = AuditEvent.objects.get(project=project, action="agent.updated")
    assert updated.metadata["changed"] == ["config"]


def test_a_config_deployed_again_as_it_was_is_audited_as_unchanged(api, project):
    config = {"b": 1, "a": [1.5, None, {"c": "d"}], "e": True}
    api.send("PUT", "/v1/agents/support", {"config": config})
    api.send("PUT", "/v1/agents/support", {"config": dict(reversed(config.items()))})
    updated = AuditEvent.objects.get(project=project, action="agent.updated")
    assert updated.metadata["changed"] == []


def test_put_replaces_the_whole_configuration(api, project):
    api.send("PUT", "/v1/agents/support", {"description": "v1", "config": {"a": 1}})
    body = assert_ok(api.send("PUT", "/v1/agents/support", {}), status=200)
    assert (body["kind"], body["description"], body["config"]) == ("echo", "", {})


def test_put_with_no_body_deploys_an_echo_agent(api):
    response = api.client.put("/v1/agents/bare", headers=api._headers(api.token, None))
    body = assert_ok(response, status=201)
    assert (body["name"], body["kind"]) == ("bare", "echo")


def test_a_deployed_agent_can_be_invoked_at_once(api):
    api.send("PUT", "/v1/agents/fresh_1", {"description": "new"})
    assert assert_ok(api.post("/v1/agents/fresh_1/invoke", {"prompt": "p"}))["output"] == "p"


@pytest.mark.parametrize("name", ["a", "A-b_9", "x" * 64])
def test_put_accepts_every_name_the_contract_allows(api, name):
    assert_ok(api.send("PUT", f"/v1/agents/{name}", {}), status=201)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "openai"}, "kind"),
        ({"description": None}, "description"),
        ({"description": "x" * 501}, "description"),
        ({"config": "model=a"}, "config"),
    ],
)
def test_a_refused_put_changes_nothing(api, project, body, field):
    api.send("PUT", "/v1/agents/support", {"description": "kept", "config": {"a": 1}})
    error = assert_error(api.send("PUT", "/v1/agents/support", body), 400, "invalid_field_value")
    assert f"'{field}'" in error["message"]
    agent = Agent.objects.get(project=project, name="support")
    assert (agent.description, agent.config) == ("kept", {"a": 1})


def test_a_config_past_its_limit_is_refused_and_one_at_the_limit_is_kept(api, project):
    """Without a limit a config filled the 2.5 MB body, and each worker keeps the agents
    it was asked for beside the callers it caches (api/callers.py, 4,096 of them): a few
    such agents invoked in turn could fill a worker's memory, every tenant's with it."""
    padding = '{"a":""}'
    at_limit = {"a": "x" * (MAX_CONFIG_BYTES - len(padding))}
    assert_ok(api.send("PUT", "/v1/agents/support", {"config": at_limit}), status=201)
    past = {"a": "x" * (2 * 1024 * 1024)}
    error = assert_error(
        api.send("PUT", "/v1/agents/support", {"config": past}), 400, "invalid_field_value"
    )
    assert "'config'" in error["message"] and f"{MAX_CONFIG_BYTES:,}" in error["message"]
    assert Agent.objects.get(project=project, name="support").config == at_limit


def test_a_config_is_measured_as_utf8_bytes_not_characters(api, project):
    padding = '{"a":""}'
    euros = {"a": "€" * ((MAX_CONFIG_BYTES - len(padding)) // 3 + 1)}  # 3 bytes each
    assert_error(
        api.send("PUT", "/v1/agents/support", {"config": euros}), 400, "invalid_field_value"
    )
    assert not Agent.objects.filter(project=project, name="support").exists()


def test_the_api_description_gives_the_config_limit(client):
    description = client.get("/v1/openapi.json").json()
    deploy = description["paths"]["/v1/agents/{name}"]["put"]
    config = deploy["requestBody"]["content"]["application/json"]["schema"]["properties"]["config"]
    assert f"{MAX_CONFIG_BYTES:,} bytes" in config["description"]


def test_a_refused_put_of_a_new_name_creates_nothing(api, project):
    api.send("PUT", "/v1/agents/never", {"kind": "nope"})
    api.send("PUT", "/v1/agents/never%0A", {})
    assert not Agent.objects.filter(name__startswith="never").exists()


# execution logs


def invoke_n(api, n: int, agent: str = "my-agent", **context) -> list[str]:
    ids = []
    for i in range(n):
        body = {"prompt": f"p{i}"}
        if context:
            body["context"] = context
        ids.append(assert_ok(api.post(f"/v1/agents/{agent}/invoke", body))["execution"]["id"])
    return ids


def test_execution_logs_are_newest_first_with_what_the_agent_saw(api, api_key):
    ids = invoke_n(api, 3, tenant="t1")
    page = assert_ok(api.get("/v1/execution-logs"))
    assert [e["id"] for e in page["data"]] == list(reversed(ids))
    newest = page["data"][0]
    assert {"id", "agent", "type", "status", "durationMs", "createdAt", "input", "output"} <= set(
        newest
    )
    assert (newest["agent"], newest["type"], newest["status"]) == ("my-agent", "invoke", "success")
    assert newest["input"]["prompt"] == "p2"
    assert newest["input"]["context"] == {"tenant": "t1"}
    assert newest["output"] == "p2"


@pytest.mark.parametrize("limit", [1, 2, 4, 7])
def test_execution_logs_page_through_every_execution_exactly_once(api, limit):
    ids = invoke_n(api, 7)
    pages = walk(api, "/v1/execution-logs", limit)
    seen = [e["id"] for page in pages for e in page["data"]]
    assert seen == list(reversed(ids))


def test_a_new_execution_does_not_shift_the_pages_being_read(api):
    ids = invoke_n(api, 4)
    first = assert_ok(api.get("/v1/execution-logs", limit="2"))
    invoke_n(api, 1)
    second = assert_ok(api.get("/v1/execution-logs", limit="2", cursor=first["nextCursor"]))
    assert [e["id"] for e in second["data"]] == [ids[1], ids[0]]


def test_execution_logs_can_be_filtered_by_agent(api, project):
    Agent.objects.create(project=project, name="other")
    invoke_n(api, 2)
    other = invoke_n(api, 2, agent="other")
    page = assert_ok(api.get("/v1/execution-logs", agent="other"))
    assert [e["id"] for e in page["data"]] == list(reversed(other))


def test_execution_logs_include_chats(api):
    api.post(CHAT, {"messages": [{"role": "user", "content": "hey"}], "context": {"c": 1}})
    entry = assert_ok(api.get("/v1/execution-logs"))["data"][0]
    assert entry["type"] == "chat"
    assert entry["input"]["messages"] == [{"role": "user", "content": "hey"}]
    assert entry["input"]["context"] == {"c": 1}
    assert entry["output"][-1] == {"role": "assistant", "content": "hey"}


def test_execution_logs_keep_the_execution_after_its_agent_is_gone(api, project):
    invoke_n(api, 1)
    Agent.objects.filter(project=project, name="my-agent").delete()
    entry = assert_ok(api.get("/v1/execution-logs"))["data"][0]
    assert entry["agent"] == "my-agent"


def test_execution_created_at_is_recent(api):
    invoke_n(api, 1)
    entry = assert_ok(api.get("/v1/execution-logs"))["data"][0]
    created = datetime.datetime.fromisoformat(entry["createdAt"])
    assert abs(timezone.now() - created) < datetime.timedelta(minutes=1)


def test_a_token_shaped_agent_name_is_refused(api, api_key):
    response = api.send("PUT", f"/v1/agents/{api_key[1]}", {})
    error = assert_error(response, 400, "invalid_field_value")
    assert "looks like a Reminix token" in error["message"]
    assert api_key[1] not in response.content.decode()


def test_a_nul_byte_in_a_name_or_body_is_a_clear_client_error(api):
    assert_error(api.post("/v1/agents/a%00b/invoke", {"prompt": "x"}), 404, "agent_not_found")
    assert_error(api.get("/v1/execution-logs", agent="a\x00b"), 400, "invalid_field_value")
    response = api.client.generic(
        "POST",
        "/v1/agents/my-agent/invoke",
        '{"prompt": "a\\u0000b"}',
        content_type="application/json",
        headers={"Authorization": f"Bearer {api.token}"},
    )
    assert "NUL" in assert_error(response, 400, "invalid_request")["message"]


# What the execution log keeps of a large call


def test_a_prompt_longer_than_the_log_keeps_is_answered_whole_and_logged_by_its_start(
    api, monkeypatch
):
    from core import write_behind

    sent = []
    original = write_behind._send
    monkeypatch.setattr(
        write_behind, "_send", lambda records: (sent.extend(records), original(records))
    )
    prompt = "é" * 300_000  # 1.8 MB of body once escaped: within the API's 2.5 MB
    body = assert_ok(api.post(INVOKE, {"prompt": prompt, "context": {"tenant": "t1"}}))
    assert body["output"] == prompt  # the caller is never cut short
    execution = Execution.objects.get()
    cut = {"truncated": True, "jsonChars": 300_000 * 6 + 2, "start": '"' + "\\u00e9" * 1365 + "\\"}
    assert execution.input == {"prompt": cut, "context": {"tenant": "t1"}, "serverContext": {}}
    assert execution.output == cut
    assert len(cut["start"]) == 8192
    # What one call puts on the stream stays small, whatever it sent.
    assert sent and max(len(record.encoded()) for record in sent) < 40_000


def test_the_log_keeps_whole_what_fits_and_cuts_each_part_on_its_own(api):
    fits = "a" * (16_384 - 2)  # exactly 16,384 characters of JSON
    assert_ok(api.post(INVOKE, {"prompt": fits}))
    assert Execution.objects.get().input["prompt"] == fits
    Execution.objects.all().delete()
    big_input = {"rows": [{"n": i, "text": "x" * 50} for i in range(1000)]}
    assert_ok(api.post(INVOKE, {"input": big_input, "context": {"small": True}}))
    execution = Execution.objects.get()
    assert execution.input["input"]["truncated"] is True
    assert execution.input["context"] == {"small": True}
    assert execution.output["truncated"] is True
    Execution.objects.all().delete()
    messages = [{"role": "user", "content": "y" * 20_000}]
    assert_ok(api.post(CHAT, {"messages": messages}))
    execution = Execution.objects.get()
    assert execution.input["messages"]["truncated"] is True
    assert execution.output["jsonChars"] > 40_000


def test_characters_outside_the_bmp_are_counted_as_escaped(api):
    prompt = "🚀" * 2_700  # 12 characters of JSON each: 32,402 in all
    assert_ok(api.post(INVOKE, {"prompt": prompt}))
    kept = Execution.objects.get().input["prompt"]
    assert kept["truncated"] is True and kept["jsonChars"] == 2_700 * 12 + 2


def test_execution_logs_show_the_cut_as_the_description_says(api):
    assert_ok(api.post(INVOKE, {"prompt": "z" * 20_000}))
    (logged,) = assert_ok(api.get("/v1/execution-logs"))["data"]
    assert logged["input"]["prompt"] == {
        "truncated": True,
        "jsonChars": 20_002,
        "start": '"' + "z" * 8191,
    }


def test_a_token_pasted_into_an_agents_description_is_refused_and_not_kept(api, api_key):
    body = {"kind": "echo", "description": f"deploy with {api_key[1]}"}
    response = api.send("PUT", "/v1/agents/support", body)
    assert_error(response, 400, "invalid_field_value")
    assert api_key[1] not in response.content.decode()
    assert not Agent.objects.filter(name="support").exists()
