"""Every field of every /v1 and /client endpoint that takes a body, sent JSON the contract
refuses or no field expects (NaN, a lone surrogate, a NUL, 5,000-deep nesting, 10**40,
"²" and other digits, year 10000, a 10,000-character string, a token), and every endpoint
sent odd headers (Authorization, X-Project, Idempotency-Key, User-Agent, Content-Type,
Origin, X-Forwarded-For): an answer in the contract's envelope, never a 500, an ERROR in
the log or a token written back; another project's ids are 404.

tests/api/test_hostile_input.py has the cases each found a bug; this is the sweep around
them. Every field with ~40 values and every header with ~10, on each endpoint, was 4,000
requests (70 s on SQLite, 2 minutes on PostgreSQL) and found nothing this sample would
not: here each field takes eight, and an endpoint's fields between them all."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

from accounts.models import Membership
from apikeys.services import api_key_create, personal_token_create
from tests.accounts.test_role_matrix import World, elsewhere  # noqa: F401  # fixtures
from tests.accounts.world import world  # noqa: F401  # fixture
from tests.api.assertions import REQUEST_ID
from tests.core.test_get_pages_take_odd_queries import (  # noqa: F401  # fixtures
    Errors,
    errors_logged,
)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def odd_json(secret: str) -> list[str]:
    """JSON text, each to stand where a field's value goes."""
    return [
        "NaN",
        '"\\ud800"',
        '"a\\u0000b"',
        nested(5000),
        str(10**40),
        '"²"',
        '"١٢"',
        '"１２"',
        '"10000-01-01T00:00:00Z"',
        '"9999-12-31T23:59:59Z"',
        '"a\\r\\nb"',
        '"\\u202eevil\\u202c"',
        json.dumps("x" * 10_000),
        json.dumps(secret),
        "Infinity",
        "1e400",
        "-1",
        "null",
        "[]",
        "{}",
        '["x", ' * 40 + '"x"' + "]" * 40,
        json.dumps(["x"] * 1000),
    ]


def odd_headers(secret: str, other_slug: str) -> dict[str, list[str]]:
    return {
        "Authorization": [
            f"Bearer {secret}\x00",
            "Bearer " + "x" * 10_000,
            f"bearer  {secret} x",
            "Bearer Ã\x82Â²",
            f"Bearer {secret[:-1]}\x00",
        ],
        "X-Project": ["\x00", "x" * 10_000, str(10**40), other_slug, "Â²"],
        "Idempotency-Key": ["\x00", "a\x00b", "x" * 10_000, secret, "\r\n"],
        "User-Agent": ["x" * 10_000, "a\x00b"],
        "Origin": ["null", "\x00", "https://" + "x" * 10_000],
        "X-Forwarded-For": ["\x00", "1.2.3.4, evil, " + "9" * 5000, "999.999.999.999"],
    }


CONTENT_TYPES = ["text/plain", "application/json; charset=utf-16", "multipart/form-data", ""]


class Sweep:
    """Sends calls as given and notes what went wrong, for one list."""

    def __init__(self, client: Client, errors: Errors, secrets: list[str]) -> None:
        self.client, self.errors, self.secrets = client, errors, secrets
        self.failures: list[str] = []

    def send(
        self,
        method: str,
        path: str,
        body: str,
        headers: dict[str, str],
        *,
        content_type: str = "application/json",
        expect: int | None = None,
        echoes: bool = False,
    ) -> None:
        self.errors.records.clear()
        response = self.client.generic(
            method, path, body, content_type=content_type, headers=headers
        )
        what = f"{method} {path} {body[:50]!r} {str(headers)[:90]}"
        status = response.status_code
        if status >= 500 or self.errors.records:
            logged = [r.getMessage()[:120] for r in self.errors.records]
            self.failures.append(f"{what}: {status} {logged}")
        if status >= 400 and not in_envelope(response):
            self.failures.append(f"{what}: {status} {response.content[:120]!r}")
        if not echoes and any(s[12:].encode() in response.content for s in self.secrets):
            self.failures.append(f"{what}: a token written back")
        if expect is not None and status != expect:
            self.failures.append(f"{what}: {status}, not {expect}")


def in_envelope(response: Any) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    error = body.get("error") if isinstance(body, dict) else None
    return (
        set(body) == {"error"}
        and isinstance(error, dict)
        and set(error) == {"code", "message", "status", "requestId"}
        and error["status"] == response.status_code
        and bool(REQUEST_ID.match(error["requestId"]))
        and response["X-Request-Id"] == error["requestId"]
    )


def test_every_field_and_header_of_the_api_takes_odd_values(
    world: World,  # noqa: F811
    elsewhere: World,  # noqa: F811
    errors_logged: Errors,  # noqa: F811
    make_user,
    settings,
) -> None:
    settings.API_RATE_LIMIT_PER_MINUTE = 1_000_000  # the sweep is one caller's many calls
    key = world.key_secret
    _, pat = personal_token_create(
        user=world.ada, name="Sweep", permissions=["agents", "read", "write", "keys"]
    )
    outsider = make_user(email="outsider@example.com", name="Outsider")
    Membership.objects.create(project=elsewhere.project, user=outsider)
    _, their_pat = personal_token_create(
        user=outsider, name="Theirs", permissions=["agents", "read", "write", "keys"]
    )
    _, their_key = api_key_create(project=elsewhere.project, name="Theirs", created_by=outsider)
    sweep = Sweep(Client(raise_request_exception=False), errors_logged, [key, pat, their_key])
    as_key = {"Authorization": f"Bearer {key}"}
    as_pat = {"Authorization": f"Bearer {pat}", "X-Project": world.project.slug}
    minted = sweep.client.post(
        "/v1/client-tokens", {"context": {}}, content_type="application/json", headers=as_key
    ).json()
    as_client = {"Authorization": f"Bearer {minted['token']}"}
    sweep.secrets.append(minted["token"])
    key_id = f"key_{world.key.pk}"
    endpoints: list[tuple[str, str, dict[str, Any], dict[str, str]]] = [
        ("POST", "/v1/agents/my-agent/invoke", {"prompt": "hi", "context": {}}, as_key),
        ("POST", "/v1/agents/my-agent/invoke", {"input": {"a": 1}}, as_pat),
        (
            "POST",
            "/v1/agents/my-agent/chat",
            {"messages": [{"role": "user", "content": "hi"}], "context": {}},
            as_key,
        ),
        ("PUT", "/v1/agents/swept", {"kind": "echo", "description": "d", "config": {}}, as_key),
        (
            "POST",
            "/v1/client-tokens",
            {
                "context": {},
                "serverContext": {},
                "ttlSeconds": 60,
                "permissions": ["agents:invoke"],
                "agents": ["my-agent"],
            },
            as_key,
        ),
        (
            "POST",
            "/v1/api-keys",
            {
                "name": "n",
                "permissions": ["read"],
                "expiresAt": "2030-01-01T00:00:00Z",
                "agents": ["my-agent"],
                "agentActions": ["invoke"],
                "allowedNetworks": ["10.0.0.0/8"],
            },
            as_pat,
        ),
        ("PATCH", f"/v1/api-keys/{key_id}", {"name": "n2"}, as_pat),
        ("POST", f"/v1/api-keys/{key_id}/suspend", {"reason": "r"}, as_pat),
        ("POST", f"/v1/api-keys/{key_id}/roll", {"overlapSeconds": 60}, as_pat),
        ("POST", "/v1/credentials/revoke", {"credentials": ["reminix_sk_x"]}, {}),
        ("POST", "/client/agents/my-agent/invoke", {"prompt": "hi"}, as_client),
    ]
    values = odd_json(key)
    for method, path, body, headers in endpoints:
        # An agent echoes what it is given (the contract's `echo` kind), a token too.
        echoes = "/agents/my-agent/" in path
        # Eight values to each field, all of them to the fields of an endpoint with three.
        for j, (field, valid) in enumerate(body.items()):
            for n in range(8):
                value = values[(j * 8 + n) % len(values)]
                inner = f"[{value}]" if isinstance(valid, list) else value
                fields = [
                    f"{json.dumps(k)}: {inner if k == field else json.dumps(v)}"
                    for k, v in body.items()
                ]
                sweep.send(method, path, "{" + ", ".join(fields) + "}", headers, echoes=echoes)
        for content_type in CONTENT_TYPES:
            sweep.send(method, path, json.dumps(body), headers, content_type=content_type)
    reads = [("GET", "/v1/agents", {}, as_key), ("GET", "/client/token", {}, as_client)]
    for i, (method, path, body, headers) in enumerate(endpoints + reads):
        for header, sent in odd_headers(key, elsewhere.project.slug).items():
            value = sent[i % len(sent)]
            sweep.send(method, path, json.dumps(body) if body else "", {**headers, header: value})
    # Another project's ids, by a caller of this one and by one of that one: 404.
    theirs = {"Authorization": f"Bearer {their_pat}", "X-Project": elsewhere.project.slug}
    for method, suffix in [("GET", ""), ("PATCH", ""), ("POST", "/roll"), ("DELETE", "")]:
        sweep.send(method, f"/v1/api-keys/{key_id}{suffix}", "{}", theirs, expect=404)
        other_id = f"/v1/api-keys/key_{elsewhere.key.pk}{suffix}"
        sweep.send(method, other_id, "{}", as_pat, expect=404)
    for odd_id in ["key_²", "key_١", "key_１", f"key_{10**40}", "key_-1", "key_1%00", key]:
        sweep.send("GET", f"/v1/api-keys/{odd_id}", "", as_pat, expect=404)
    their_token = f"/v1/client-tokens/{minted['id']}"
    sweep.send("DELETE", their_token, "", {"Authorization": f"Bearer {their_key}"}, expect=404)
    assert sweep.failures == [], "\n".join(sweep.failures)
