"""Agent scopes (issue 11, point 4): a key, PAT or client token may be limited to named
agents and to agents:invoke / agents:chat; 403 insufficient_permissions names what is
missing; a client token's scope can only narrow its parent's; existing keys keep full
access."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from agents.services import agent_deploy
from apikeys.models import ApiKey, ClientToken
from apikeys.services import personal_token_create
from audit.models import AuditEvent
from tests.api.assertions import assert_error, assert_ok
from tests.conftest import HTMX, Api

CHAT_BODY = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def agents(project):
    for name in ("support", "billing"):
        agent_deploy(project=project, name=name, kind="echo", description="", config={})


def test_a_key_without_a_scope_reaches_every_agent_both_ways(api, agents):
    for name in ("my-agent", "support", "billing"):
        assert_ok(api.post(f"/v1/agents/{name}/invoke", {"prompt": "hi"}))
        assert_ok(api.post(f"/v1/agents/{name}/chat", CHAT_BODY))


def test_a_key_limited_to_named_agents_is_refused_the_others_naming_them(make_key, project, agents):
    _, secret = make_key(project, name="Support bot", agent_names=["support"])
    api = Api(Client(), secret)
    assert_ok(api.post("/v1/agents/support/invoke", {"prompt": "hi"}))
    error = assert_error(
        api.post("/v1/agents/billing/invoke", {"prompt": "hi"}), 403, "insufficient_permissions"
    )
    assert "support" in error["message"] and "'billing'" in error["message"]
    # An agent that does not exist gets the same refusal: the scope says nothing of it.
    assert_error(
        api.post("/v1/agents/nobody/invoke", {"prompt": "hi"}), 403, "insufficient_permissions"
    )


def test_a_key_limited_to_invoke_cannot_chat(make_key, project, agents):
    _, secret = make_key(project, name="Invoker", agent_actions=["agents:invoke"])
    api = Api(Client(), secret)
    assert_ok(api.post("/v1/agents/support/invoke", {"prompt": "hi"}))
    error = assert_error(
        api.post("/v1/agents/support/chat", CHAT_BODY), 403, "insufficient_permissions"
    )
    assert "agents:chat" in error["message"]


def test_a_pat_scope_applies_in_every_project(project, user, agents):
    _, secret = personal_token_create(user=user, name="CLI", agent_names=["billing"])
    cli = Api(Client(), secret)
    headers = {"X-Project": project.slug}
    assert_ok(cli.post("/v1/agents/billing/invoke", {"prompt": "hi"}, headers=headers))
    assert_error(
        cli.post("/v1/agents/support/invoke", {"prompt": "hi"}, headers=headers),
        403,
        "insufficient_permissions",
    )


def test_a_client_token_is_minted_narrower_and_never_wider(make_key, project, agents):
    _, secret = make_key(project, name="Web", agent_names=["support", "billing"])
    api = Api(Client(), secret)
    minted = assert_ok(
        api.post(
            "/v1/client-tokens",
            {"context": {}, "agents": ["support"], "permissions": ["agents:invoke"]},
        ),
        201,
    )
    browser = Api(Client(), minted["token"])
    assert_ok(browser.post("/client/agents/support/invoke", {"prompt": "hi"}))
    assert_error(
        browser.post("/client/agents/billing/invoke", {"prompt": "hi"}),
        403,
        "insufficient_permissions",
    )
    token = ClientToken.objects.get(public_id=minted["id"])
    assert token.agent_names == ["support"] and token.agent_actions == ["agents:invoke"]
    event = AuditEvent.objects.get(action="client_token.created")
    assert event.metadata["agents"] == ["support"]

    wider = assert_error(
        api.post("/v1/client-tokens", {"context": {}, "agents": ["support", "my-agent"]}),
        403,
        "insufficient_permissions",
    )
    assert "my-agent" in wider["message"] and "narrow" in wider["message"]
    assert ClientToken.objects.count() == 1


def test_a_client_token_is_never_minted_with_an_action_its_key_does_not_have(make_key, project):
    _, secret = make_key(project, name="Invoker", agent_actions=["agents:invoke"])
    wider = assert_error(
        Api(Client(), secret).post(
            "/v1/client-tokens", {"context": {}, "permissions": ["agents:invoke", "agents:chat"]}
        ),
        403,
        "insufficient_permissions",
    )
    assert "agents:chat" in wider["message"] and "narrow" in wider["message"]
    assert not ClientToken.objects.exists()


def test_a_client_token_minted_without_a_scope_keeps_its_parents(make_key, project, agents):
    _, secret = make_key(project, name="Web", agent_names=["support"])
    minted = assert_ok(Api(Client(), secret).post("/v1/client-tokens", {"context": {}}), 201)
    browser = Api(Client(), minted["token"])
    assert_ok(browser.post("/client/agents/support/invoke", {"prompt": "hi"}))
    error = assert_error(
        browser.post("/client/agents/billing/invoke", {"prompt": "hi"}),
        403,
        "insufficient_permissions",
    )
    assert "client token" in error["message"] and "Web" not in error["message"]


def test_a_client_token_limited_to_chat_cannot_invoke(api, agents):
    minted = assert_ok(
        api.post("/v1/client-tokens", {"context": {}, "permissions": ["agents:chat"]}), 201
    )
    browser = Api(Client(), minted["token"])
    error = assert_error(
        browser.post("/client/agents/support/invoke", {"prompt": "hi"}),
        403,
        "insufficient_permissions",
    )
    assert "agents:invoke" in error["message"]


@pytest.mark.parametrize(
    "scope",
    [
        {"permissions": "agents:invoke"},
        {"permissions": []},
        {"permissions": ["agents:delete"]},
        {"permissions": [1]},
        {"agents": []},
        {"agents": ["bad name"]},
        {"agents": ["x" * 65]},
        {"agents": ["reminix_sk_" + "a" * 40]},
        {"agents": ["a"] * 51},
        {"agents": {"support": True}},
    ],
)
def test_odd_scopes_at_mint_are_400s_naming_the_field(api, scope):
    """(A NUL byte anywhere in a body is refused before any field: tests/api.)"""
    field = next(iter(scope))
    error = assert_error(
        api.post("/v1/client-tokens", {"context": {}, **scope}), 400, "invalid_field_value"
    )
    assert field in error["message"]
    assert ClientToken.objects.count() == 0


@pytest.mark.parametrize(
    ("agents", "item", "saying"),
    [
        (["a\nb"], "agents[0]", "does not print"),
        (["support", "a\tb"], "agents[1]", "does not print"),
        (["support", "bill\u200bing"], "agents[1]", "does not print"),
        (["support", 7], "agents[1]", "must be a string"),
        (["support", "bad name"], "agents[1]", "“bad name” is not an agent name"),
        (["support", ""], "agents[1]", "names no agent"),
        (["reminix_sk_" + "a1B2c3D4e5" * 3 + " x"], "agents[0]", "looks like a Reminix token"),
        ([" "], "agents[0]", "names no agent"),
        # An item is one name as a whole (CONTRACT.md), not a line of the key form's.
        (["support,billing"], "agents[0]", "is not an agent name"),
        (["support", " billing"], "agents[1]", "is not an agent name"),
        (["billing "], "agents[0]", "is not an agent name"),
    ],
)
def test_a_bad_agent_name_at_mint_is_refused_naming_the_item_and_what_is_wrong(
    api, agents, item, saying
):
    """A line break in a name was refused as "must be a list of at most 50 strings", of a
    list of one string; and an empty name was taken, minting a token for every agent."""
    error = assert_error(
        api.post("/v1/client-tokens", {"context": {}, "agents": agents}),
        400,
        "invalid_field_value",
    )
    assert f"'{item}'" in error["message"] and saying in error["message"], error
    assert "at most 50" not in error["message"]
    assert error["message"].isprintable()  # no line break, tab or invisible character
    assert "a1B2c3D4e5" not in error["message"]
    assert ClientToken.objects.count() == 0


def test_more_agents_than_a_scope_takes_is_refused_saying_how_many_were_sent(api):
    error = assert_error(
        api.post("/v1/client-tokens", {"context": {}, "agents": ["a"] * 51}),
        400,
        "invalid_field_value",
    )
    assert "at most 50" in error["message"] and "51" in error["message"]


# The creation form


def test_the_create_form_limits_a_key_to_agents_and_an_action(signed_in, project):
    url = reverse("apikeys:api_key_create", args=[project.slug])
    form = signed_in.get(url, headers=HTMX)
    data = {
        "name": "Support bot",
        "access": "full",
        "expiry": "never",
        "agents": "support, billing\nsupport",
        "agent_use": "agents:invoke",
        "form_id": form.context["form_id"],
    }
    done = signed_in.post(url, data, headers=HTMX)
    assert done.status_code == 201
    key = ApiKey.objects.get(name="Support bot")
    assert key.agent_names == ["support", "billing"] and key.agent_actions == ["agents:invoke"]
    assert "agents support, billing; invoke only" in done.content.decode()
    page = signed_in.get(reverse("apikeys:api_key_list", args=[project.slug]))
    assert "agents support, billing; invoke only" in page.content.decode()


@pytest.mark.parametrize(
    "agents", ["bad name", "1²", "a\x00b", ",".join(f"a{i}" for i in range(51))]
)
def test_bad_agent_names_are_named_beside_the_field(signed_in, project, agents):
    url = reverse("apikeys:api_key_create", args=[project.slug])
    data = {"name": "K", "access": "full", "expiry": "never", "agents": agents, "agent_use": "both"}
    refused = signed_in.post(url, data, headers=HTMX)
    assert refused.status_code == 422
    assert 'id="id_agents_error"' in refused.content.decode()
    assert not ApiKey.objects.filter(name="K").exists()


def test_a_tokens_secret_without_its_prefix_is_no_agent_name_in_the_form(
    signed_in, project, make_key
):
    """The 36 characters after a token's prefix have an agent name's shape: pasted into
    the form's agents they were kept as the new key's scope and shown on its page."""
    _, secret = make_key(project, name="Production")
    url = reverse("apikeys:api_key_create", args=[project.slug])
    agents = f"support, {secret.removeprefix('reminix_sk_')}"
    data = {"name": "K", "access": "full", "expiry": "never", "agents": agents, "agent_use": "both"}
    refused = signed_in.post(url, data, headers=HTMX)
    assert refused.status_code == 422
    assert "looks like a Reminix token" in refused.content.decode()
    assert secret[11:] not in refused.content.decode()
    assert not ApiKey.objects.filter(name="K").exists()


def test_a_scoped_key_reads_deploys_and_lists_only_its_agents(make_key, project, agents, api):
    """Found in review: the name scope held for invoke and chat only."""
    _, secret = make_key(project, name="Support ops", agent_names=["support"])
    scoped = Api(Client(), secret)
    assert_ok(scoped.get("/v1/agents/support"))
    assert_error(scoped.get("/v1/agents/billing"), 403, "insufficient_permissions")
    body = {"kind": "echo", "description": "taken over"}
    assert_error(scoped.send("PUT", "/v1/agents/billing", body), 403, "insufficient_permissions")
    assert [a["name"] for a in assert_ok(scoped.get("/v1/agents"))["data"]] == ["support"]
    assert_ok(api.post("/v1/agents/billing/invoke", {"prompt": "someone else's"}))
    assert_ok(scoped.post("/v1/agents/support/invoke", {"prompt": "mine"}))
    logs = assert_ok(scoped.get("/v1/execution-logs"))["data"]
    assert {e["agent"] for e in logs} == {"support"}
