"""Every refusal /v1 can give is the contract's envelope (shared/CONTRACT.md, "Errors")."""

from __future__ import annotations

import base64
import logging

import pytest
from django.test import Client
from django.test.client import FakePayload

import agents.runtime
from agents.models import Agent, Execution
from tests.api.assertions import assert_error, assert_ok
from usage.models import UsageRecord

INVOKE = "/v1/agents/my-agent/invoke"
CHAT = "/v1/agents/my-agent/chat"


def raw(api, method: str, path: str, data: bytes | str, content_type: str):
    return api.client.generic(
        method, path, data, content_type=content_type, headers=api._headers(api.token, None)
    )


def cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


# invalid_request


@pytest.mark.parametrize(
    "body",
    ['{"prompt": "hi"', "{'prompt': 'hi'}", "prompt=hi", '{"prompt": "hi"} trailing', "\ufeff{"],
)
def test_a_body_that_is_not_json_is_invalid_request(api, body):
    error = assert_error(raw(api, "POST", INVOKE, body, "application/json"), 400, "invalid_request")
    assert "JSON" in error["message"]


def test_a_body_that_is_not_utf8_is_invalid_request(api):
    response = raw(api, "POST", INVOKE, b'{"prompt": "\xff\xfe"}', "application/json")
    assert_error(response, 400, "invalid_request")


def test_json_nested_too_deeply_is_invalid_request_not_a_crash(api):
    body = "[" * 100_000 + "]" * 100_000
    assert_error(raw(api, "POST", INVOKE, body, "application/json"), 400, "invalid_request")


@pytest.mark.parametrize("body", ["[]", '["prompt"]', '"hi"', "42", "null", "true"])
def test_a_json_body_that_is_not_an_object_is_invalid_request(api, body):
    error = assert_error(raw(api, "POST", INVOKE, body, "application/json"), 400, "invalid_request")
    assert "object" in error["message"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_body_with_another_content_type_is_invalid_request(api, content_type):
    response = raw(api, "POST", INVOKE, '{"prompt": "hi"}', content_type)
    error = assert_error(response, 400, "invalid_request")
    assert "application/json" in error["message"]
    assert not Execution.objects.exists()


def test_a_body_over_the_upload_limit_is_413_invalid_request(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.post(INVOKE, {"prompt": "x" * 2000})
    error = assert_error(response, 413, "invalid_request")
    assert "too large" in error["message"]


def chunked(api, method: str, path: str, body: bytes):
    """`body` as gunicorn hands on one sent with 'Transfer-Encoding: chunked': the header,
    the body decoded on wsgi.input, and no Content-Length."""
    headers = {
        **api._headers(api.token, None),
        "Content-Type": "application/json",
        "Transfer-Encoding": "chunked",
    }
    return api.client.generic(method, path, headers=headers, **{"wsgi.input": FakePayload(body)})


def test_a_deploy_sent_in_chunks_is_411_and_leaves_the_agent_as_it_was(api):
    """Django reads no body without a Content-Length: the deploy went ahead as if the body
    were empty, 200, and the agent's description and config were wiped."""
    assert_ok(api.send("PUT", "/v1/agents/bot", {"description": "v1", "config": {"a": 1}}), 201)
    response = chunked(api, "PUT", "/v1/agents/bot", b'{"description": "v2", "config": {"b": 2}}')
    error = assert_error(response, 411, "invalid_request")
    assert "Content-Length" in error["message"]
    agent = Agent.objects.get(name="bot")
    assert (agent.description, agent.config) == ("v1", {"a": 1})


def test_a_roll_sent_in_chunks_is_411_and_the_secret_is_not_ended_at_once(admin, make_key, project):
    """Read as no body, {"overlapSeconds": 3600} was a roll with no overlap: the secret
    every server still used stopped at once."""
    key, _ = make_key(project, name="Servers")
    roll = f"/v1/api-keys/key_{key.pk}/roll"
    response = chunked(admin, "POST", roll, b'{"overlapSeconds": 3600}')
    assert_error(response, 411, "invalid_request")
    key.refresh_from_db()
    assert key.rolled_at is None and key.previous_token_hash is None


def test_json_with_a_charset_parameter_is_accepted(api):
    response = raw(api, "POST", INVOKE, '{"prompt": "hi"}', "application/json; charset=utf-8")
    assert assert_ok(response)["output"] == "hi"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", INVOKE, "POST"),
        ("PUT", INVOKE, "POST"),
        ("DELETE", CHAT, "POST"),
        ("POST", "/v1/agents", "GET, HEAD"),
        ("DELETE", "/v1/agents/my-agent", "GET, HEAD, PUT"),
        ("POST", "/v1/agents/my-agent", "GET, HEAD, PUT"),
        ("PATCH", "/v1/execution-logs", "GET, HEAD"),
        ("POST", "/v1/projects/current", "GET, HEAD"),
    ],
)
def test_a_wrong_method_is_405_invalid_request_with_allow(api, method, path, allowed):
    response = api.send(method, path, {"prompt": "hi"})
    error = assert_error(response, 405, "invalid_request")
    assert response["Allow"] == allowed
    assert method not in error["message"].split()  # it names the methods to use instead
    assert allowed.split(", ")[0] in error["message"]


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GET", INVOKE, "Use POST on this endpoint."),
        ("POST", "/v1/agents", "Use GET or HEAD on this endpoint."),
        ("DELETE", "/v1/agents/my-agent", "Use GET, HEAD or PUT on this endpoint."),
    ],
)
def test_a_405_lists_the_methods_as_a_sentence_would(api, method, path, message):
    """Three or more methods read "GET, HEAD or PUT", not "GET or HEAD or PUT"."""
    assert assert_error(api.send(method, path, {}), 405, "invalid_request")["message"] == message


def test_a_wrong_method_is_405_whatever_the_token(api):
    api.token = None
    response = api.send("GET", INVOKE)
    assert_error(response, 405, "invalid_request")
    assert response["Allow"] == "POST"


# missing_required_field / invalid_field_value: the message names the field


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (INVOKE, {}, "prompt"),
        (INVOKE, {"context": {"a": 1}}, "prompt"),
        (CHAT, {}, "messages"),
        (CHAT, {"context": {}}, "messages"),
    ],
)
def test_a_missing_field_is_missing_required_field_naming_it(api, path, body, field):
    error = assert_error(api.post(path, body), 400, "missing_required_field")
    assert f"'{field}'" in error["message"]


def test_an_empty_body_on_invoke_is_missing_required_field(api):
    response = raw(api, "POST", INVOKE, "", "application/json")
    error = assert_error(response, 400, "missing_required_field")
    assert "'prompt'" in error["message"]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", INVOKE, {"prompt": 42}, "prompt"),
        ("POST", INVOKE, {"prompt": None}, "prompt"),
        ("POST", INVOKE, {"prompt": ["hi"]}, "prompt"),
        ("POST", INVOKE, {"input": "text"}, "input"),
        ("POST", INVOKE, {"input": [1, 2]}, "input"),
        ("POST", INVOKE, {"prompt": "hi", "context": "ctx"}, "context"),
        ("POST", INVOKE, {"prompt": "hi", "context": [1]}, "context"),
        ("POST", CHAT, {"messages": "hi"}, "messages"),
        ("POST", CHAT, {"messages": []}, "messages"),
        ("POST", CHAT, {"messages": [{"content": "hi"}]}, "messages[0].role"),
        ("POST", CHAT, {"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ("POST", CHAT, {"messages": ["hi"]}, "messages[0].role"),
        (
            "POST",
            CHAT,
            {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": 1}]},
            "messages[1].content",
        ),
        ("POST", CHAT, {"messages": [{"role": "user", "content": "a"}], "context": 1}, "context"),
        ("PUT", "/v1/agents/new", {"kind": "gpt-9"}, "kind"),
        ("PUT", "/v1/agents/new", {"kind": ["echo"]}, "kind"),
        ("PUT", "/v1/agents/new", {"description": 5}, "description"),
        ("PUT", "/v1/agents/new", {"description": "x" * 501}, "description"),
        ("PUT", "/v1/agents/new", {"config": "x"}, "config"),
        ("PUT", "/v1/agents/new", {"config": [1]}, "config"),
        ("PUT", "/v1/agents/bad%20name", {}, "name"),
        ("PUT", "/v1/agents/bad.name", {}, "name"),
        ("PUT", "/v1/agents/" + "a" * 65, {}, "name"),
        ("PUT", "/v1/agents/trailing%0A", {}, "name"),
    ],
)
def test_a_bad_field_is_invalid_field_value_naming_it(api, method, path, body, field):
    error = assert_error(api.send(method, path, body), 400, "invalid_field_value")
    assert f"'{field}'" in error["message"]


@pytest.mark.parametrize("path", ["/v1/agents", "/v1/execution-logs"])
@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", "1.5", "²", "9" * 5000, " 5"])
def test_a_bad_limit_is_invalid_field_value(api, path, limit):
    error = assert_error(api.get(path, limit=limit), 400, "invalid_field_value")
    assert "'limit'" in error["message"]


@pytest.mark.parametrize("path", ["/v1/agents", "/v1/execution-logs"])
@pytest.mark.parametrize("value", ["%%%", "é", cursor("²"), cursor("9" * 5000)])
def test_a_cursor_this_api_did_not_give_out_is_invalid_field_value_or_harmless(api, path, value):
    response = api.get(path, cursor=value)
    if response.status_code == 200:
        # A cursor is only a position; one that decodes to some name just starts there.
        assert set(response.json()) == {"data", "hasMore", "nextCursor"}
    else:
        error = assert_error(response, 400, "invalid_field_value")
        assert "'cursor'" in error["message"]


@pytest.mark.parametrize(
    "value", [cursor("abc"), cursor("-1"), cursor("²"), cursor("9" * 30), cursor(str(2**63))]
)
def test_a_made_up_execution_cursor_is_invalid_field_value(api, value):
    # Execution cursors are ids; one past the database's integers is not one we gave out.
    response = api.get("/v1/execution-logs", cursor=value)
    error = assert_error(response, 400, "invalid_field_value")
    assert "'cursor'" in error["message"]


# agent_not_found / not_found


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/agents/nobody", None),
        ("POST", "/v1/agents/nobody/invoke", {"prompt": "hi"}),
        ("POST", "/v1/agents/nobody/chat", {"messages": [{"role": "user", "content": "x"}]}),
    ],
)
def test_an_unknown_agent_is_agent_not_found(api, method, path, body):
    error = assert_error(api.send(method, path, body), 404, "agent_not_found")
    assert "'nobody'" in error["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/",
        "/v1/nothing-here",
        "/v1/agents/my-agent/invoke/",
        "/v1/agents/my-agent/delete",
        "/v1/client/token",
        "/v1/agents/my-agent/invoke/extra",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_unknown_path_is_not_found(api, path, method):
    error = assert_error(api.send(method, path, {"prompt": "hi"}), 404, "not_found")
    assert path in error["message"]


def test_an_unknown_path_is_not_found_without_a_token(api):
    api.token = None
    assert_error(api.get("/v1/nothing-here"), 404, "not_found")


# internal_error


@pytest.fixture
def broken_runtime(monkeypatch):
    def explode(**kwargs):
        raise RuntimeError("boom: the secret internals of the runtime")

    monkeypatch.setattr(agents.runtime, "_echo_invoke", lambda payload: explode())
    monkeypatch.setattr(agents.runtime, "_echo_chat", lambda messages: explode())


@pytest.mark.parametrize(
    ("path", "body"),
    [(INVOKE, {"prompt": "hi"}), (CHAT, {"messages": [{"role": "user", "content": "x"}]})],
)
def test_an_exception_is_a_500_internal_error_without_the_traceback(
    api, broken_runtime, caplog, path, body
):
    with caplog.at_level(logging.ERROR):
        response = api.post(path, body)
    error = assert_error(response, 500, "internal_error")
    text = response.content.decode()
    for leak in ("Traceback", "RuntimeError", "boom", "secret internals", 'File "', ".py"):
        assert leak not in text
    assert "Quote the request id" in error["message"]
    # The traceback goes to the server log, under the same request id.
    logged = [r for r in caplog.records if error["requestId"] in r.getMessage()]
    assert logged and logged[0].exc_info is not None


def test_an_internal_error_is_recorded_in_the_usage_log(api, broken_runtime, api_key):
    response = api.post(INVOKE, {"prompt": "hi"})
    record = UsageRecord.objects.get(request_id=response["X-Request-Id"])
    assert (record.status, record.error_code, record.api_key_id) == (
        500,
        "internal_error",
        api_key[0].pk,
    )


def test_every_api_answer_is_kept_out_of_caches(api):
    for response in (
        api.post(INVOKE, {"prompt": "hi"}),
        api.get("/v1/agents/nobody"),
        api.get("/v1/nothing-here"),
    ):
        assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", INVOKE, 200),
        ("POST", CHAT, 400),
        ("PUT", "/v1/agents/my-agent", 400),  # `prompt` is no field of a deploy
        ("POST", "/v1/nothing-here", 404),
        ("DELETE", "/v1/agents/my-agent/invoke/", 404),
    ],
)
def test_api_writes_need_no_csrf_token_anywhere_under_v1(api, method, path, status):
    # Browsers' cookies are not how /v1 is authenticated, so Django's CSRF check (which
    # the test client normally skips) must not turn a POST into an HTML 403.
    api.client = Client(enforce_csrf_checks=True)
    response = api.send(method, path, {"prompt": "hi"})
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"


def test_a_field_error_that_is_a_sentence_of_its_own_reads_as_one(admin):
    """The services' own messages start with a capital ("That looks like a Reminix
    token…", "The most is 50…"): written after "The field 'name'" they read "The field
    'name' That looks like…"."""
    response = admin.post("/v1/api-keys", {"name": "reminix_sk_abcdefghijklmnopqrstu"})
    error = assert_error(response, 400, "invalid_field_value")
    assert error["message"].startswith("The field 'name': That looks like a Reminix token")
    taken = admin.post("/v1/api-keys", {"name": "k", "permissions": []})
    assert assert_error(taken, 400, "invalid_field_value")["message"].startswith(
        "The field 'permissions' must"
    )
