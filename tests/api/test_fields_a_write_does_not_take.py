"""A write that makes or changes a credential or an agent refuses a field it does not take,
as Stripe's API does: ignored, a typo gave a wider credential than the caller asked for
(`ttl_seconds` for `ttlSeconds`: a token of an hour, not a minute; `agent` for `agents`: a
token for every agent), or wiped what it meant to set (`confg` deployed an empty config).
Invoke and chat stay open: their body is what the agent is given."""

from __future__ import annotations

import pytest

from agents.models import Agent
from apikeys.models import ApiKey, ClientToken
from tests.api.assertions import assert_error, assert_ok


@pytest.mark.parametrize(
    ("body", "named", "hint"),
    [
        ({"context": {}, "ttl_seconds": 60}, "ttl_seconds", "ttlSeconds"),
        ({"context": {}, "agent": ["my-agent"]}, "agent", "agents"),
        ({"context": {}, "permission": ["agents:chat"]}, "permission", "permissions"),
        ({"context": {}, "server_context": {"plan": "x"}}, "server_context", "serverContext"),
    ],
)
def test_a_client_token_mint_with_a_mistyped_field_is_refused_and_mints_nothing(
    api, body, named, hint
):
    error = assert_error(api.post("/v1/client-tokens", body), 400, "invalid_request")
    assert f"'{named}'" in error["message"] and f"'{hint}'" in error["message"]
    assert not ClientToken.objects.exists()


def test_a_client_token_mint_with_only_fields_it_takes_still_works(api):
    body = {
        "context": {"userId": "u_1"},
        "serverContext": None,
        "ttlSeconds": 60,
        "permissions": ["agents:invoke"],
        "agents": ["my-agent"],
    }
    assert_ok(api.post("/v1/client-tokens", body), 201)


def test_an_agent_deploy_with_a_mistyped_field_keeps_the_config_it_had(api, project):
    assert_ok(api.send("PUT", "/v1/agents/support", {"config": {"tone": "kind"}}), 201)
    error = assert_error(
        api.send("PUT", "/v1/agents/support", {"confg": {"tone": "curt"}}), 400, "invalid_request"
    )
    assert "'confg'" in error["message"] and "'config'" in error["message"]
    assert Agent.objects.get(project=project, name="support").config == {"tone": "kind"}


def test_key_writes_refuse_fields_they_do_not_take(admin, project):
    error = assert_error(
        admin.post("/v1/api-keys", {"name": "CI", "expires_at": "2027-01-01T00:00:00Z"}),
        400,
        "invalid_request",
    )
    assert "'expiresAt'" in error["message"]
    assert not ApiKey.objects.filter(name="CI").exists()
    created = assert_ok(admin.post("/v1/api-keys", {"name": "Web"}), 201)
    url = f"/v1/api-keys/{created['id']}"
    assert_error(admin.send("PATCH", url, {"name": "W", "notes": "x"}), 400, "invalid_request")
    assert_error(admin.post(f"{url}/roll", {"overlap": 3600}), 400, "invalid_request")
    assert_error(admin.post(f"{url}/suspend", {"reason": "x", "why": "y"}), 400, "invalid_request")
    key = ApiKey.objects.get(pk=created["id"].removeprefix("key_"))
    assert (key.name, key.previous_hint, key.suspended_at) == ("Web", "", None)


@pytest.mark.parametrize(
    "field", ["reminix_sk_" + "A" * 36, "x" * 5000, "line\nbreak", "\u202eevil", "²"]
)
def test_an_unknown_field_is_not_repeated_unless_it_reads_as_a_name(api, field):
    error = assert_error(
        api.post("/v1/client-tokens", {"context": {}, field: 1}), 400, "invalid_request"
    )
    assert field not in error["message"]
    assert "ttlSeconds" in error["message"]  # what it does take


def test_invoke_still_takes_fields_it_does_not_know(api):
    assert_ok(api.post("/v1/agents/my-agent/invoke", {"prompt": "hi", "stream": False}))
