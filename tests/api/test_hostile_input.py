"""What the security review sent the API (issue 10): each one a 500 before, a clear
answer in the contract's envelope now, on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import json
import re

import pytest
from django.db import OperationalError
from django.test import Client

from agents.models import Agent
from api import endpoint as api_endpoint
from tests.api.assertions import assert_error, assert_ok
from tests.conftest import Api
from usage.models import UsageRecord

INVOKE = "/v1/agents/my-agent/invoke"

# JSON that Python's json module reads, but the contract does not (shared/CONTRACT.md).
REFUSED_VALUES = {
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "a float that overflows": "1e400",
    "an integer past 64 bits": "9223372036854775808",
    "a 5,000 digit integer": "9" * 5000,
    "a lone surrogate": '"\\ud800"',
    "a lone surrogate in a key": '{"\\udfff": 1}',
    "a NUL character": '"a\\u0000b"',
}


MANY_PARAMETERS = "&".join(f"f{n}=1" for n in range(1200))


def raw(api, method: str, path: str, body: str):
    return api.client.generic(
        method, path, body, content_type="application/json", headers=api._headers(api.token, None)
    )


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("value", REFUSED_VALUES.values(), ids=REFUSED_VALUES.keys())
@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("POST", INVOKE, '{"input": {"x": %s}}'),
        ("POST", INVOKE, '{"prompt": "hi", "context": {"x": %s}}'),
        ("POST", "/v1/agents/my-agent/chat", '{"messages": [{"role": "user", "content": %s}]}'),
        ("POST", "/v1/client-tokens", '{"context": {"x": %s}}'),
        ("POST", "/v1/client-tokens", '{"context": {}, "serverContext": {"x": %s}}'),
        ("PUT", "/v1/agents/new-agent", '{"kind": "echo", "config": {"x": %s}}'),
    ],
)
def test_json_the_contract_refuses_is_invalid_request(api, method, path, template, value):
    error = assert_error(raw(api, method, path, template % value), 400, "invalid_request")
    assert "JSON" in error["message"]


def test_nesting_to_64_levels_is_accepted_and_65_refused(api):
    # The agent config sits one level down in the body.
    accepted = raw(api, "PUT", "/v1/agents/deep", '{"config": {"x": ' + nested(62) + "}}")
    assert_ok(accepted, 201)
    refused = raw(api, "PUT", "/v1/agents/deep", '{"config": {"x": ' + nested(63) + "}}")
    error = assert_error(refused, 400, "invalid_request")
    assert "64 levels" in error["message"]


def test_json_nested_5000_deep_is_invalid_request(api):
    body = '{"prompt": "hi", "context": {"x": ' + nested(5000) + "}}"
    assert_error(raw(api, "POST", INVOKE, body), 400, "invalid_request")


def test_ordinary_numbers_and_text_still_pass(api):
    body = '{"input": {"n": -9223372036854775808, "f": 1.5e300, "t": "caf\\u00e9 \\ud83d\\ude00"}}'
    answer = assert_ok(raw(api, "POST", INVOKE, body))
    assert answer["output"] == {"n": -(2**63), "f": 1.5e300, "t": "café 😀"}


@pytest.mark.parametrize("role", [["user"], {"user": 1}, 1, None])
def test_a_chat_role_that_is_not_a_string_is_invalid_field_value(api, role):
    body = {"messages": [{"role": role, "content": "hi"}]}
    error = assert_error(api.post("/v1/agents/my-agent/chat", body), 400, "invalid_field_value")
    assert "messages[0].role" in error["message"]


def cursor(raw_bytes: bytes) -> str:
    return base64.urlsafe_b64encode(raw_bytes).decode().rstrip("=")


@pytest.mark.parametrize("value", ["AA", cursor(b"my\x00agent"), cursor(b"a b"), cursor(b"x" * 65)])
def test_an_agent_cursor_that_is_no_agent_name_is_invalid_field_value(api, value):
    error = assert_error(api.get("/v1/agents", cursor=value), 400, "invalid_field_value")
    assert "cursor" in error["message"]


@pytest.mark.parametrize("value", ["AA", cursor(b"1\x00"), cursor(b"\xc2\xb2"), cursor(b"9" * 30)])
def test_an_execution_cursor_that_is_no_id_is_invalid_field_value(api, value):
    error = assert_error(api.get("/v1/execution-logs", cursor=value), 400, "invalid_field_value")
    assert "cursor" in error["message"]


@pytest.mark.parametrize(
    "public_id", ["ctok_%00", "ctok_%00aaaaaaaaaaaaaaaaaaa", "reminix_sk_x", "ctok_" + "a" * 21]
)
def test_deleting_a_client_token_by_an_impossible_id_is_not_found(api, public_id):
    assert_error(api.send("DELETE", f"/v1/client-tokens/{public_id}"), 404, "not_found")


def test_the_dashboard_revoke_of_an_impossible_client_token_id_is_404(signed_in, project):
    url = f"/projects/{project.slug}/settings/client-tokens/ctok_%00/revoke/"
    assert signed_in.post(url).status_code == 404


@pytest.mark.parametrize(
    "name", ["x-reminix_sk_abcdefghijklmnopqrstuv", "my_REMINIX_PAT_thing", "a-reminix_ct_b"]
)
def test_an_agent_name_holding_a_token_prefix_anywhere_is_refused(api, name):
    error = assert_error(api.send("PUT", f"/v1/agents/{name}", {}), 400, "invalid_field_value")
    assert "looks like a Reminix token" in error["message"]


def test_an_agent_named_with_a_tokens_secret_without_its_prefix_is_not_deployed(
    api, project, make_key
):
    """The 36 characters after a token's prefix are an agent name's shape: deployed, they
    were kept as the agent's name, shown in every list of agents, the execution log and
    the project's overview, a secret anyone who reads it can use with the prefix everyone
    knows. An agent scope already refuses them (4831986), so such an agent could be
    deployed but never scoped."""
    _, secret = make_key(project, name="Pasted")
    rest = secret.removeprefix("reminix_sk_")
    error = assert_error(api.send("PUT", f"/v1/agents/{rest}", {}), 400, "invalid_field_value")
    assert "looks like a Reminix token" in error["message"]
    assert rest not in json.dumps(error)
    assert not Agent.objects.filter(name=rest).exists()
    # A name of that length that is no token's is one.
    assert_ok(api.send("PUT", f"/v1/agents/{'a' * 36}", {}), 201)


@pytest.mark.parametrize("path", ["/v1/agents", "/v1/agents/my-agent", "/v1/projects/current"])
def test_head_answers_where_get_does_without_a_body(api, path):
    got = api.client.get(path, headers=api._headers(api.token, None))
    head = api.client.head(path, headers=api._headers(api.token, None))
    assert head.status_code == 200
    assert head.content == b""
    assert head["Content-Length"] == str(len(got.content))
    assert head["X-Request-Id"].startswith("req_")


def test_head_on_a_post_endpoint_is_405(api):
    response = api.client.head(INVOKE, headers=api._headers(api.token, None))
    assert response.status_code == 405
    assert response["Allow"] == "POST"


@pytest.mark.parametrize("path", ["/v1", "/client"])
def test_the_api_roots_without_a_slash_are_the_envelopes_404(api, path):
    response = api.client.get(path, headers=api._headers(api.token, None))
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize("token", [None, "reminix_sk_nonsense", "Basic abc"])
def test_a_401_says_how_to_authenticate(token):
    headers = {"Authorization": token if token and " " in token else f"Bearer {token}"}
    response = Client().get("/v1/agents", headers=headers if token else {})
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="reminix"'


def test_a_database_that_does_not_answer_is_503_with_retry_after(api, api_key, monkeypatch):
    def down(*args, **kwargs):
        raise OperationalError("connection timeout expired")

    monkeypatch.setattr(api_endpoint, "identify", down)
    response = api.get("/v1/agents")
    error = assert_error(response, 503, "service_unavailable")
    assert response["Retry-After"] == "5"
    assert "timeout" not in error["message"]  # the driver's words stay in the server log
    # The call is counted on its key all the same (by its token's hash, when written).
    row = UsageRecord.objects.get(request_id=error["requestId"])
    assert (row.api_key_id, row.project_id, row.status) == (
        api_key[0].pk,
        api_key[0].project_id,
        503,
    )


ODD_HEADER_VALUES = ["\x00", "a\x00b", "x" * 10_000, "²", "é", "reminix_sk_" + "A" * 36, "\t"]


@pytest.mark.parametrize("value", ODD_HEADER_VALUES)
@pytest.mark.parametrize(
    "header", ["Idempotency-Key", "X-Project", "Origin", "User-Agent", "X-Forwarded-For"]
)
def test_odd_header_values_are_answered_never_a_500(api, header, value):
    """A NUL in a preflight's Origin reached PostgreSQL (a 500) until the origin's shape
    was checked first."""
    calls = [
        ("POST", INVOKE),
        ("GET", "/v1/agents"),
        ("POST", "/v1/client-tokens"),
        ("GET", "/client/token"),
        ("OPTIONS", "/client/agents/my-agent/invoke"),
    ]
    for method, path in calls:
        response = api.client.generic(
            method,
            path,
            '{"prompt": "hi", "context": {}}',
            content_type="application/json",
            headers={"Authorization": f"Bearer {api.token}", header: value},
        )
        assert response.status_code < 500, (method, path, response.status_code)
        if response.status_code >= 400:
            assert response.json()["error"]["requestId"] == response["X-Request-Id"]


@pytest.mark.parametrize("path", ["/v1/agents", "/v1/execution-logs"])
def test_more_query_parameters_than_django_reads_is_invalid_request(api, path):
    """Django refuses to read over DATA_UPLOAD_MAX_NUMBER_FIELDS (1,000) parameters. That
    was a 500 on the list endpoints, which read the query string."""
    answer = api.client.get(f"{path}?{MANY_PARAMETERS}", headers=api._headers(api.token, None))
    error = assert_error(answer, 400, "invalid_request")
    assert error["message"] == "Too many query parameters: send at most 1000."
    assert UsageRecord.objects.filter(path=path, status=400).exists()


def test_an_endpoint_that_reads_no_query_string_answers_as_ever_with_too_many(api):
    assert_ok(raw(api, "POST", f"{INVOKE}?{MANY_PARAMETERS}", '{"prompt": "hi"}'))


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/agents/{token}/invoke"), ("GET", "/v1/{token}"), ("GET", "/client/{token}")],
)
def test_a_token_pasted_into_a_path_is_not_repeated_in_the_error_message(
    api, make_key, project, method, path
):
    """The contract: a token is never written to a message. The 404 used to name the
    agent or the path it was given, token and all."""
    _, pasted = make_key(project, name="Pasted")
    answer = raw(api, method, path.format(token=pasted), '{"prompt": "hi"}')
    message = assert_error(answer, 404, "agent_not_found" if "agents" in path else "not_found")[
        "message"
    ]
    assert "reminix_sk_[redacted]" in message
    assert pasted[len("reminix_sk_") :][:12] not in answer.content.decode()


@pytest.mark.parametrize("length", ["²", "٣", "1\x00", "abc", "-1", "1e3", " "])
def test_a_content_length_that_is_no_number_is_a_400_in_the_envelope(api, length):
    """gunicorn refuses these before Django sees them; Django's own server (`make run`)
    does not, and reading the body then failed on int(): a 500."""
    for path in (INVOKE, "/v1/client-tokens", "/client/agents/my-agent/invoke"):
        response = api.client.generic(
            "POST",
            path,
            b'{"prompt": "hi"}',
            content_type="application/json",
            headers={"Authorization": f"Bearer {api.token}"},
            CONTENT_LENGTH=length,
        )
        error = assert_error(response, 400, "invalid_request")
        assert "Content-Length" in error["message"], (path, length)


@pytest.mark.parametrize("value", ["x" * 100_000, "a\x00b" * 10_000, "Ünïcödé-project"])
def test_an_x_project_that_is_no_slug_is_not_repeated_back(user, value):
    """A header no project can be named by is refused without being written back: a 10 MB
    X-Project came back whole in the message (six times over, NULs escaped)."""
    from apikeys.services import personal_token_create

    _, secret = personal_token_create(user=user, name="CLI")
    answer = Client().get(
        "/v1/agents", headers={"Authorization": f"Bearer {secret}", "X-Project": value}
    )
    error = assert_error(answer, 403, "insufficient_permissions")
    assert "X-Project" in error["message"]
    assert len(answer.content) < 500


def test_an_origin_that_is_no_origin_is_not_repeated_back(api):
    minted = assert_ok(api.post("/v1/client-tokens", {"context": {}}), 201)
    answer = Client().get(
        "/client/token",
        headers={
            "Authorization": f"Bearer {minted['token']}",
            "Origin": "https://" + "x" * 100_000,
        },
    )
    assert_error(answer, 403, "insufficient_permissions")
    assert len(answer.content) < 500


@pytest.mark.parametrize("path", ["/client/agents/my-agent/invoke", "/client/token"])
def test_a_preflight_while_the_database_does_not_answer_is_503_in_the_envelope(
    db, monkeypatch, path
):
    """A preflight asks the database which origins are allowed, outside the frame that
    turns a database that does not answer into 503 service_unavailable: it was a 500
    from Django's own handler, an HTML page with no request id."""
    import api.cors

    class Down:
        def filter(self, *args, **kwargs):
            raise OperationalError("connection timeout expired")

    monkeypatch.setattr(api.cors.AllowedOrigin, "objects", Down())
    response = Client(raise_request_exception=False).options(
        path,
        headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"},
    )
    error = assert_error(response, 503, "service_unavailable")
    assert response["Retry-After"] == "5"
    assert "timeout" not in error["message"]
    assert "Access-Control-Allow-Origin" not in response
    from api.openapi import openapi_document

    templated = path.replace("my-agent", "{name}")
    described = openapi_document()["paths"][templated]["options"]["responses"]
    assert described["503"] == {"$ref": "#/components/responses/Error503"}


ODD_AGENT_NAMES = {
    "an encoded slash": "a%2Fb",
    "an encoded slash alone": "%2F",
    "a NUL byte": "a%00b",
    "a line break": "a%0ab",
    "5,000 characters": "x" * 5000,
    "a pasted API key": "{token}",
}
AGENT_CALLS = {
    "invoke": ("/v1/agents/{name}/invoke", '{"prompt": "hi"}'),
    "chat": ("/v1/agents/{name}/chat", '{"messages": [{"role": "user", "content": "hi"}]}'),
}


@pytest.mark.parametrize("name", ODD_AGENT_NAMES.values(), ids=ODD_AGENT_NAMES.keys())
@pytest.mark.parametrize("call", AGENT_CALLS.values(), ids=AGENT_CALLS.keys())
def test_an_agent_name_no_agent_can_have_is_agent_not_found_and_never_logged(
    api, make_key, project, caplog, name, call
):
    """The contract's 404 for an agent that does not exist is `agent_not_found`, whatever
    the name: one holding an encoded slash used to fall past the route to `not_found`."""
    _, pasted = make_key(project, name="Pasted")
    path, body = call
    with caplog.at_level("DEBUG"):
        answer = raw(api, "POST", path.format(name=name.format(token=pasted)), body)
    assert_error(answer, 404, "agent_not_found")
    secret = pasted[len("reminix_sk_") :]
    assert secret not in answer.content.decode() and secret not in caplog.text
    logged = UsageRecord.objects.latest("id")
    assert logged.error_code == "agent_not_found"
    assert secret not in logged.path and secret not in logged.agent


@pytest.mark.parametrize("name", ["a%2Fb", "%2F", "a%00b"])
def test_the_client_api_answers_an_impossible_agent_name_as_v1_does(api, name):
    minted = assert_ok(api.post("/v1/client-tokens", {"context": {}}), 201)
    client = Client()
    answer = client.post(
        f"/client/agents/{name}/invoke",
        '{"prompt": "hi"}',
        content_type="application/json",
        headers={"Authorization": f"Bearer {minted['token']}"},
    )
    assert_error(answer, 404, "agent_not_found")


def _v1_paths() -> list[str]:
    """Every route of /v1, with a sample value for each of its parameters."""
    from django.urls import get_resolver

    from tests.api.test_openapi import _routes

    sample = {"name": "my-agent", "key_id": "key_1", "public_id": "ctok_" + "a" * 20}
    routes = _routes(get_resolver("reminix_dashboard.api_root_urls").url_patterns)
    return [
        re.sub(r"<(?:[^>:]+:)?([^>]+)>", lambda parameter: sample[parameter[1]], path)
        for path, _ in routes
        if path.startswith("/v1/")
    ]


@pytest.mark.parametrize("path", _v1_paths())
def test_a_preflight_to_v1_is_405_in_the_envelope_with_allow_and_no_cors(db, path):
    """/v1 is for servers' keys: it answers no CORS preflight (the Client API does), and
    its refusal is the contract's envelope with the methods it takes, as any other 405."""
    answer = Client().options(
        path,
        headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"},
    )
    error = assert_error(answer, 405, "invalid_request")
    assert answer["Allow"] and "OPTIONS" not in answer["Allow"]
    assert answer["Allow"].split(", ")[0] in error["message"]
    assert not [h for h in answer.headers if h.lower().startswith("access-control-")]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/api-keys/key_" + "9" * 5000,
        "/v1/api-keys/" + "x" * 5000 + "/roll",
        "/v1/client-tokens/ctok_" + "a" * 5000,
        "/client/" + "x" * 5000,
    ],
)
def test_a_long_path_is_not_repeated_back_whole(admin, path):
    """A 404 names the key id or the path it was given: 5,000 characters of it came back
    whole (a 5 KB answer). As an X-Project no project can have is not written back, only
    the start of one is."""
    answer = admin.send("POST" if path.endswith("/roll") else "GET", path)
    error = assert_error(answer, 404, "not_found")
    assert len(answer.content) < 500
    assert "…" in error["message"]


def test_a_token_cut_short_in_a_long_path_is_still_not_repeated(admin, make_key, project):
    _, pasted = make_key(project, name="Pasted")
    for path in ("/v1/api-keys/" + "x" * 60 + pasted, "/v1/" + "x" * 66 + pasted):
        answer = admin.send("GET", path)
        assert_error(answer, 404, "not_found")
        assert pasted[len("reminix_sk_") :][:4] not in answer.content.decode(), path


LONG_NAME = "x" * 5000


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/v1/agents/{LONG_NAME}", None),
        ("PUT", f"/v1/agents/{LONG_NAME}", {}),
        ("POST", f"/v1/agents/{LONG_NAME}/invoke", {"prompt": "hi"}),
        ("POST", f"/v1/agents/{LONG_NAME}/chat", {"messages": [{"role": "user", "content": "x"}]}),
    ],
)
def test_a_scoped_keys_refusal_does_not_repeat_a_long_path_back_whole(
    make_key, project, method, path, body
):
    """A key scoped to some agents was refused with the name from the path in its message:
    5,000 characters of it came back whole, where a 404 repeats only its start."""
    _, secret = make_key(project, name="Scoped", agent_names=["my-agent"])
    answer = Api(Client(), secret).send(method, path, body)
    error = assert_error(answer, 403, "insufficient_permissions")
    assert len(answer.content) < 500
    assert "…" in error["message"]


def test_a_client_tokens_scope_refusal_does_not_repeat_a_long_path_back_whole(api):
    minted = assert_ok(api.post("/v1/client-tokens", {"context": {}, "agents": ["my-agent"]}), 201)
    answer = Client().post(
        f"/client/agents/{LONG_NAME}/invoke",
        '{"prompt": "hi"}',
        content_type="application/json",
        headers={"Authorization": f"Bearer {minted['token']}"},
    )
    error = assert_error(answer, 403, "insufficient_permissions")
    assert len(answer.content) < 500
    assert "…" in error["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/agents/{rest}"),
        ("POST", "/v1/agents/{rest}/invoke"),
        ("POST", "/v1/agents/{rest}/chat"),
        ("GET", "/v1/api-keys/{rest}"),
        ("GET", "/v1/{rest}"),
        ("GET", "/v1/" + "x" * 50 + "{rest}"),
        ("GET", "/client/{rest}"),
    ],
)
def test_a_tokens_secret_without_its_prefix_in_a_path_is_not_repeated_back(
    admin, make_key, project, method, path
):
    """The 36 characters after a token's prefix are refused as an agent's name, a scope or a
    key's name (anyone who reads them knows the prefixes): a 404 wrote them back whole in
    its message, "No agent named '…' in this project.", where a whole token is cut."""
    _, pasted = make_key(project, name="Pasted")
    rest = pasted.removeprefix("reminix_sk_")
    body = {"prompt": "hi", "messages": [{"role": "user", "content": "hi"}]}
    answer = admin.send(method, path.format(rest=rest), body if method == "POST" else None)
    assert answer.status_code == 404
    assert rest[:12] not in answer.content.decode()


def test_a_scoped_keys_refusal_does_not_repeat_a_tokens_secret_without_its_prefix(
    make_key, project
):
    _, pasted = make_key(project, name="Pasted")
    rest = pasted.removeprefix("reminix_sk_")
    _, secret = make_key(project, name="Scoped", agent_names=["my-agent"])
    answer = Api(Client(), secret).get(f"/v1/agents/{rest}")
    assert_error(answer, 403, "insufficient_permissions")
    assert rest[:12] not in answer.content.decode()
