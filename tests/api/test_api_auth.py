"""Who may call /v1: the bearer token, checked cheapest first, and the key's permissions."""

from __future__ import annotations

import datetime
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import Agent, Execution
from api import authentication
from apikeys.services import api_key_revoke
from apikeys.tokens import TokenKind, token_generate
from core.write_behind import buffer as usage_buffer
from tests.api.assertions import assert_error, assert_ok
from tests.conftest import Api

INVOKE = "/v1/agents/my-agent/invoke"

# Every /v1 endpoint, the permission it needs, and a body that would succeed.
ENDPOINTS = [
    ("POST", "/v1/agents/my-agent/invoke", "agents", {"prompt": "hi"}),
    (
        "POST",
        "/v1/agents/my-agent/chat",
        "agents",
        {"messages": [{"role": "user", "content": "hi"}]},
    ),
    ("GET", "/v1/agents", "read", None),
    ("GET", "/v1/agents/my-agent", "read", None),
    ("GET", "/v1/execution-logs", "read", None),
    ("PUT", "/v1/agents/my-agent", "write", {"kind": "echo", "description": "Deployed"}),
]
ENDPOINT_IDS = [f"{method} {path}" for method, path, _, _ in ENDPOINTS]


def a_well_formed_unknown_key() -> str:
    return token_generate(TokenKind.API_KEY)


def with_bad_checksum(token: str) -> str:
    last = token[-1]
    return token[:-1] + ("A" if last != "A" else "B")


# missing_api_key


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer    ", "Basic dXNlcjpwYXNz", "Token abc", "bearer"],
    ids=[
        "absent",
        "empty",
        "bearer-alone",
        "bearer-space",
        "bearer-spaces",
        "basic",
        "token",
        "lc",
    ],
)
def test_a_call_without_a_bearer_token_is_missing_api_key(api, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    api.token = None
    response = api.post(INVOKE, {"prompt": "hi"}, headers=headers)
    error = assert_error(response, 401, "missing_api_key")
    assert "Bearer" in error["message"]


def test_basic_auth_carrying_a_real_key_is_still_missing_api_key(api, api_key):
    import base64

    basic = base64.b64encode(f"{api_key[1]}:".encode()).decode()
    api.token = None
    response = api.post(INVOKE, {"prompt": "hi"}, headers={"Authorization": f"Basic {basic}"})
    assert_error(response, 401, "missing_api_key")


def test_the_bearer_scheme_is_case_insensitive(api, api_key):
    api.token = None
    response = api.post(INVOKE, {"prompt": "hi"}, headers={"Authorization": f"bearer {api_key[1]}"})
    assert assert_ok(response)["output"] == "hi"


# invalid_api_key


@pytest.mark.parametrize(
    "token",
    [
        "not-a-key",
        "reminix_sk_short",
        "reminix_sk_" + "a" * 40,
        "sk_live_" + "a" * 36,
    ],
)
def test_a_malformed_token_is_invalid_api_key(api, token):
    response = api.post(INVOKE, {"prompt": "hi"}, token=token)
    error = assert_error(response, 401, "invalid_api_key")
    assert "malformed" in error["message"]


def test_a_token_with_a_bad_checksum_is_invalid_api_key(api, api_key):
    response = api.post(INVOKE, {"prompt": "hi"}, token=with_bad_checksum(api_key[1]))
    assert_error(response, 401, "invalid_api_key")


def test_a_well_formed_but_unknown_key_is_invalid_api_key(api):
    response = api.post(INVOKE, {"prompt": "hi"}, token=a_well_formed_unknown_key())
    error = assert_error(response, 401, "invalid_api_key")
    assert "not valid" in error["message"]


@pytest.mark.parametrize("kind", [TokenKind.CLIENT_TOKEN, TokenKind.PERSONAL_ACCESS_TOKEN])
def test_an_unknown_client_token_or_personal_access_token_is_invalid_api_key(api, kind):
    # Well-formed, valid checksum, but no such token: unknown, whatever its kind.
    response = api.post(INVOKE, {"prompt": "hi"}, token=token_generate(kind))
    assert_error(response, 401, "invalid_api_key")


def test_a_token_that_fails_the_checksum_is_refused_without_any_database_query(
    api, api_key, settings, django_assert_num_queries
):
    # As in production, the usage log is written later by its background flush, so what
    # is counted here is the request alone: the session and auth middleware, the frame,
    # authentication. None of them may read the database for a made-up token.
    settings.USAGE_FLUSH_SECONDS = 3600
    with django_assert_num_queries(0):
        response = api.post(INVOKE, {"prompt": "hi"}, token=with_bad_checksum(api_key[1]))
    assert_error(response, 401, "invalid_api_key")
    assert usage_buffer.flush() == 1  # counted later, as an unattributed call


def test_a_browser_session_cookie_costs_no_query_and_identifies_no_one(
    signed_in, api_key, settings, django_assert_num_queries
):
    settings.USAGE_FLUSH_SECONDS = 3600
    api = Api(signed_in, None)  # the client carries a signed-in user's session cookie
    with django_assert_num_queries(0):
        response = api.post(INVOKE, {"prompt": "hi"}, token=with_bad_checksum(api_key[1]))
    assert_error(response, 401, "invalid_api_key")
    with django_assert_num_queries(0):
        response = api.post(INVOKE, {"prompt": "hi"})
    assert_error(response, 401, "missing_api_key")
    usage_buffer.flush()


def test_a_token_that_fails_the_checksum_is_only_counted_when_usage_is_written_at_once(
    api, api_key
):
    with CaptureQueriesContext(connection) as captured:
        response = api.post(INVOKE, {"prompt": "hi"}, token=with_bad_checksum(api_key[1]))
    assert_error(response, 401, "invalid_api_key")
    sql = [q["sql"] for q in captured.captured_queries]
    assert not [q for q in sql if q.startswith("SELECT")], sql
    # The savepoint pair around the usage write, and the unattributed counter's upsert.
    assert len(sql) == 3, sql
    assert "apikeys_unattributedcalls" in sql[1], sql


@pytest.mark.parametrize(
    "query",
    [
        "api_key={token}",
        "token={token}",
        "access_token={token}",
        "anything={token}",
        "key={token}",
        "apiKey={token}",
        "anything=Bearer%20{token}",
    ],
)
def test_a_token_in_the_query_string_is_refused_even_with_a_valid_header(api, api_key, query):
    token = api_key[1]
    response = api.post(f"{INVOKE}?{query.format(token=token)}", {"prompt": "hi"}, token=token)
    error = assert_error(response, 401, "invalid_api_key")
    assert "URL" in error["message"]
    assert not Execution.objects.exists()


def test_a_percent_encoded_token_in_the_query_string_is_refused(api, api_key):
    token = api_key[1]
    encoded = "".join(f"%{ord(c):02X}" for c in token)
    response = api.post(f"{INVOKE}?x={encoded}", {"prompt": "hi"}, token=token)
    assert_error(response, 401, "invalid_api_key")


def test_a_token_encoded_twice_in_the_query_string_is_refused(api, api_key):
    # A client that escapes a URL already escaped sends %255F for "_": decoded once, no
    # token was seen, and the key, now in every log on the way, was not said to be leaked.
    token = api_key[1]
    twice = token.replace("_", "%255F")
    response = api.post(f"{INVOKE}?x={twice}", {"prompt": "hi"}, token=token)
    assert_error(response, 401, "invalid_api_key")


def test_ordinary_query_parameters_are_not_mistaken_for_a_token(api):
    response = api.get("/v1/agents", limit="5", monkey="keyboard")
    assert assert_ok(response)["data"][0]["name"] == "my-agent"


# expired_api_key


def test_a_revoked_key_is_refused_on_the_next_request_and_the_message_says_revoked(
    api, api_key, user
):
    assert api.post(INVOKE, {"prompt": "hi"}).status_code == 200
    api_key_revoke(api_key=api_key[0], by=user)
    error = assert_error(api.post(INVOKE, {"prompt": "hi"}), 401, "expired_api_key")
    assert "revoked" in error["message"]
    assert "expired" not in error["message"]


def test_a_key_past_its_expiry_is_refused_and_the_message_says_expired(api, make_key, project):
    past = timezone.now() - datetime.timedelta(seconds=1)
    _, token = make_key(project, name="Old", expires_at=past)
    error = assert_error(api.post(INVOKE, {"prompt": "hi"}, token=token), 401, "expired_api_key")
    assert "expired" in error["message"]
    assert "revoked" not in error["message"]


def test_a_key_is_refused_from_the_very_moment_it_expires(api, make_key, project, hold_clock):
    now = hold_clock(authentication)
    _, token = make_key(project, name="Ends now", expires_at=now)
    error = assert_error(api.post(INVOKE, {"prompt": "hi"}, token=token), 401, "expired_api_key")
    assert "expired" in error["message"]


def test_a_key_before_its_expiry_works(api, make_key, project):
    soon = timezone.now() + datetime.timedelta(minutes=5)
    _, token = make_key(project, name="Soon", expires_at=soon)
    assert assert_ok(api.post(INVOKE, {"prompt": "hi"}, token=token))["output"] == "hi"


def test_a_revoked_key_that_had_also_expired_says_revoked(api, make_key, project, user):
    key, token = make_key(
        project, name="Both", expires_at=timezone.now() + datetime.timedelta(seconds=0.5)
    )
    api_key_revoke(api_key=key, by=user)
    key.__class__.objects.filter(pk=key.pk).update(
        expires_at=timezone.now() - datetime.timedelta(days=1)
    )
    error = assert_error(api.get("/v1/agents", token=token), 401, "expired_api_key")
    assert "revoked" in error["message"]


# The cost of a valid call


def test_a_valid_invoke_costs_one_statement_for_the_key_its_project_and_the_agent(api, api_key):
    with CaptureQueriesContext(connection) as captured:
        response = api.post(INVOKE, {"prompt": "hi"})
    assert_ok(response)
    # executemany() is captured as "<n> times: <sql>".
    sql = [re.sub(r"^\d+ times: ", "", q["sql"]) for q in captured.captured_queries]
    expected = [
        # 1. Authentication: the key by its unique-indexed hash, with its project and the
        # agent the URL names (the agent_unique_name index) joined in.
        ("SELECT", "apikeys_apikey", "token_hash"),
        # 2. The execution log row.
        ("INSERT", "agents_execution", None),
        # 3-12. The usage log, written in one transaction (a savepoint here, because the
        # test itself runs inside a transaction): on PostgreSQL the usage log's write lock
        # (usage/writer.py, so ids commit in order), the call, its key's hour and address
        # roll-ups, the project's hour and day roll-ups by caller and by address, and
        # "last used".
        ("SAVEPOINT", None, None),
        *(
            [("SELECT pg_advisory_xact_lock", None, None)]
            if connection.vendor == "postgresql"
            else []
        ),
        ("INSERT", "apikeys_usagerecord", None),
        ("INSERT", "apikeys_usagehour", None),
        ("INSERT", "apikeys_usageip", None),
        ("INSERT", "usage_projecthour", None),
        ("INSERT", "usage_projectday", None),
        ("INSERT", "usage_projectaddresshour", None),
        ("INSERT", "usage_projectaddressday", None),
        ("UPDATE", "apikeys_apikey", "last_used_at"),
        ("RELEASE SAVEPOINT", None, None),
    ]
    assert len(sql) == len(expected), "\n".join(sql)
    for query, (verb, table, column) in zip(sql, expected, strict=True):
        assert query.startswith(verb), query
        if table:
            assert f'"{table}"' in query or f" {table} " in query or f"{table}." in query, query
        if column:
            assert column in query, query
    authentication = [q for q in sql if "apikeys_apikey" in q and q.startswith("SELECT")]
    assert len(authentication) == 1
    assert '"accounts_project"' in authentication[0]  # the project comes in the same query
    assert '"agents_agent"' in authentication[0]  # and so does the agent
    assert "WHERE" in authentication[0] and "token_hash" in authentication[0].split("WHERE")[1]


# Permissions


@pytest.mark.parametrize(("method", "path", "permission", "body"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_a_restricted_key_without_the_permission_is_refused(
    api, make_key, project, method, path, permission, body
):
    others = [p for p in ("agents", "read", "write") if p != permission]
    _, token = make_key(project, name="Restricted", permissions=others)
    response = api.send(method, path, body, token=token)
    error = assert_error(response, 403, "insufficient_permissions")
    assert permission in error["message"]


@pytest.mark.parametrize(("method", "path", "permission", "body"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_a_key_with_only_that_permission_is_allowed(
    api, make_key, project, method, path, permission, body
):
    _, token = make_key(project, name="Only", permissions=[permission])
    response = api.send(method, path, body, token=token)
    assert response.status_code in (200, 201), response.content


@pytest.mark.parametrize(("method", "path", "permission", "body"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_a_full_key_can_do_everything(api, method, path, permission, body):
    response = api.send(method, path, body)
    assert response.status_code in (200, 201), response.content


@pytest.mark.parametrize("permissions", [["agents"], ["read"], ["write"]])
def test_any_key_can_read_its_current_project(api, make_key, project, permissions):
    _, token = make_key(project, name="Any", permissions=permissions)
    body = assert_ok(api.get("/v1/projects/current", token=token))
    assert body == {"id": project.slug, "name": project.name, "slug": project.slug}


def test_a_refused_permission_changes_nothing(api, make_key, project):
    _, token = make_key(project, name="Reader", permissions=["read"])
    api.send("PUT", "/v1/agents/new-one", {"kind": "echo"}, token=token)
    api.post(INVOKE, {"prompt": "hi"}, token=token)
    assert not Agent.objects.filter(name="new-one").exists()
    assert not Execution.objects.exists()


# Projects are sealed from each other


@pytest.fixture
def other_project(user, make_user, make_project):
    """Project B, of which `user` (who made project A's key) is also an owner."""
    other = make_project(owner=user, name="Project B")
    agent = Agent.objects.create(project=other, name="b-secret", description="B only")
    Execution.objects.create(
        project=other,
        agent=agent,
        agent_name=agent.name,
        type=Execution.Type.INVOKE,
        status=Execution.Status.SUCCESS,
        input={"prompt": "B's secret prompt"},
        output="B's secret prompt",
    )
    return other


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/agents/b-secret", None),
        ("POST", "/v1/agents/b-secret/invoke", {"prompt": "hi"}),
        ("POST", "/v1/agents/b-secret/chat", {"messages": [{"role": "user", "content": "x"}]}),
    ],
)
def test_a_key_of_project_a_gets_agent_not_found_for_project_b_agents(
    api, other_project, method, path, body
):
    response = api.send(method, path, body)
    error = assert_error(response, 404, "agent_not_found")
    assert "b-secret" in error["message"]
    assert Execution.objects.filter(project=other_project).count() == 1


def test_a_key_of_project_a_never_lists_project_b_agents_or_executions(api, other_project, project):
    names = [a["name"] for a in assert_ok(api.get("/v1/agents", limit="100"))["data"]]
    assert "b-secret" not in names
    logs = assert_ok(api.get("/v1/execution-logs", limit="100"))
    assert logs["data"] == []
    assert b"B's secret" not in api.get("/v1/execution-logs").content


def test_a_key_of_project_a_deploying_a_name_used_in_b_touches_only_a(api, other_project, project):
    response = api.send("PUT", "/v1/agents/b-secret", {"description": "A's own"})
    assert response.status_code == 201
    b_agent = Agent.objects.get(project=other_project, name="b-secret")
    assert b_agent.description == "B only"
    assert Agent.objects.get(project=project, name="b-secret").description == "A's own"


def test_the_same_agent_name_in_two_projects_runs_only_the_callers(api, other_project, project):
    assert_ok(api.post(INVOKE, {"prompt": "mine"}))
    assert Execution.objects.get(input__prompt="mine").project == project
    assert not Execution.objects.filter(project=other_project, input__prompt="mine").exists()


@pytest.mark.parametrize("param", ["api_key", "apikey", "access_token", "token", "key"])
def test_a_credential_named_parameter_is_refused_even_without_a_token_in_it(api, param):
    response = api.get(f"/v1/agents?{param}=whatever")
    assert "never accepted in the URL" in assert_error(response, 401, "invalid_api_key")["message"]
