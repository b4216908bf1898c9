"""Every endpoint of /v1 and /client, described (see builders.py for what each gets)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from api.credentials import MAX_CREDENTIAL_LENGTH, MAX_CREDENTIALS, REPORTS_PER_MINUTE
from api.openapi.builders import (
    AGENT_NAME_PARAM,
    CURSOR_PARAM,
    LIMIT_PARAM,
    Auth,
    Body,
    describe_operation,
    describe_preflight,
    header_ref,
    ok_answer,
    param,
)
from api.openapi.schemas import (
    AGENT_NAME_PATTERN,
    CLIENT_TOKEN_ID_PATTERN,
    ONE_OF_PROMPT_OR_INPUT,
    PAYLOAD,
    TIMESTAMP,
    TOKEN_SHAPED,
    Schema,
    context_schema,
    obj,
    ref,
)
from api.permissions import KEYS, Permission
from apikeys.models import CLIENT_TOKEN_MAX_TTL
from apikeys.services import (
    CLIENT_TOKEN_DEFAULT_TTL,
    MAX_WORKING_KEYS_PER_PROJECT,
)

INVOKE_DESCRIPTION = (
    "Runs the agent on `prompt` (a string) or `input` (an object) and answers at once. Its "
    "execution appears in `GET /v1/execution-logs` within about a second."
)


def all_operations() -> list[tuple[str, str, Schema]]:
    agent_404 = "`404 agent_not_found` if the caller's project has no agent of that name."
    return [
        describe_operation(
            "get",
            "/v1/agents",
            operation_id="listAgents",
            tag="Agents",
            summary="List agents",
            description="The project's agents by name, a page at a time.",
            auth=Auth.SERVER,
            permission=Permission.READ,
            parameters=[LIMIT_PARAM, CURSOR_PARAM],
            answers={200: ok_answer("A page of agents.", ref("AgentPage"))},
        ),
        describe_operation(
            "get",
            "/v1/agents/{name}",
            operation_id="getAgent",
            tag="Agents",
            summary="Get an agent",
            description=f"The agent's configuration. {agent_404}",
            auth=Auth.SERVER,
            permission=Permission.READ,
            parameters=[AGENT_NAME_PARAM],
            answers={200: ok_answer("The agent.", ref("Agent"))},
        ),
        describe_operation(
            "put",
            "/v1/agents/{name}",
            operation_id="deployAgent",
            tag="Agents",
            summary="Deploy or update an agent",
            description="Creates the agent (201) or replaces its whole configuration (200). "
            "A name that contains a Reminix token prefix, or the 36 characters after one "
            "(known by their checksum), is refused, so that a token pasted by mistake is "
            "never shown in lists and logs. A project has at most "
            f"{settings.MAX_AGENTS_PER_PROJECT:,} agents: a new name past that is "
            "`400 invalid_request` (deploying to an existing name still replaces it).",
            auth=Auth.SERVER,
            permission=Permission.WRITE,
            parameters=[
                {
                    **AGENT_NAME_PARAM,
                    "schema": {"allOf": [ref("AgentName")], "not": {"pattern": TOKEN_SHAPED}},
                }
            ],
            body=Body(
                obj(
                    {
                        "kind": {"type": "string", "enum": ["echo"], "default": "echo"},
                        "description": {"type": "string", "maxLength": 500, "default": ""},
                        "config": {
                            "type": ["object", "null"],
                            # agents.api.MAX_CONFIG_BYTES (agents is above api)
                            "description": "Any JSON object of at most 65,536 bytes (compact "
                            "JSON in UTF-8); null or absent is {}.",
                        },
                    },
                ),
                required=False,
                example={"kind": "echo", "description": "Support bot", "config": {"tone": "kind"}},
            ),
            answers={
                200: ok_answer("Updated.", ref("Agent"), write=True),
                201: ok_answer("Created.", ref("Agent"), write=True),
            },
        ),
        describe_operation(
            "post",
            "/v1/agents/{name}/invoke",
            operation_id="invokeAgent",
            tag="Agents",
            summary="Invoke an agent",
            description=f"{INVOKE_DESCRIPTION} {agent_404}",
            auth=Auth.SERVER,
            permission=Permission.AGENTS,
            parameters=[AGENT_NAME_PARAM],
            body=Body(
                obj(
                    {
                        **PAYLOAD,
                        "context": {
                            "type": ["object", "null"],
                            "description": "Anything the agent should know about the caller.",
                        },
                    },
                    closed=False,
                    oneOf=ONE_OF_PROMPT_OR_INPUT,
                ),
                example={"prompt": "hello"},
            ),
            answers={200: ok_answer("The agent's answer.", ref("InvokeResult"), write=True)},
        ),
        describe_operation(
            "post",
            "/v1/agents/{name}/chat",
            operation_id="chatWithAgent",
            tag="Agents",
            summary="Chat with an agent",
            description=f"Sends a conversation; the answer is the conversation with the "
            f"agent's reply added. Fields of a message other than `role` and `content` are "
            f"dropped. {agent_404}",
            auth=Auth.SERVER,
            permission=Permission.AGENTS,
            parameters=[AGENT_NAME_PARAM],
            body=Body(
                obj(
                    {
                        "messages": {"type": "array", "minItems": 1, "items": ref("ChatMessage")},
                        "context": {"type": ["object", "null"]},
                    },
                    required=["messages"],
                    closed=False,
                ),
                example={"messages": [{"role": "user", "content": "hello"}]},
            ),
            answers={
                200: ok_answer("The conversation and the reply.", ref("ChatResult"), write=True)
            },
        ),
        describe_operation(
            "get",
            "/v1/execution-logs",
            operation_id="listExecutionLogs",
            tag="Execution logs",
            summary="List executions",
            description="The project's agent executions, newest first, with what each agent "
            "was given and answered. A call shows here up to a second after its answer.",
            auth=Auth.SERVER,
            permission=Permission.READ,
            parameters=[
                LIMIT_PARAM,
                CURSOR_PARAM,
                param("agent", "query", "Only this agent's executions.", ref("AgentName")),
            ],
            answers={200: ok_answer("A page of executions.", ref("ExecutionPage"))},
        ),
        describe_operation(
            "post",
            "/v1/client-tokens",
            operation_id="createClientToken",
            tag="Client tokens",
            summary="Mint a client token",
            description="A short-lived token for one browser, which reaches only the Client "
            "API. A retry with the same Idempotency-Key is `409` naming the token made, never "
            "the token again.",
            auth=Auth.SERVER,
            permission=Permission.AGENTS,
            body=Body(
                obj(
                    {
                        "context": context_schema(
                            "context", "Readable by the browser and the agent."
                        ),
                        "serverContext": {
                            **context_schema("serverContext", "Seen only by the agent."),
                            "type": ["object", "null"],
                        },
                        "ttlSeconds": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": CLIENT_TOKEN_MAX_TTL,
                            "default": CLIENT_TOKEN_DEFAULT_TTL,
                            "description": "How long the token lives, in seconds.",
                        },
                        "permissions": {
                            "type": "array",
                            "items": {"enum": ["agents:invoke", "agents:chat"]},
                            "minItems": 1,
                            "uniqueItems": True,
                            "description": "What the browser may do with agents; absent: what "
                            "the minting key or PAT may. Can only narrow it (else 403 "
                            "insufficient_permissions).",
                        },
                        "agents": {
                            "type": "array",
                            "items": {"type": "string", "pattern": AGENT_NAME_PATTERN},
                            "minItems": 1,
                            "maxItems": 50,
                            "description": "The only agents the browser may use; absent: those "
                            "of the minting key or PAT. Can only narrow them.",
                        },
                    },
                    required=["context"],
                ),
                example={"context": {"userId": "u_123"}, "serverContext": {"plan": "pro"}},
            ),
            answers={201: ok_answer("Minted.", ref("ClientTokenCreated"), write=True)},
        ),
        describe_operation(
            "delete",
            "/v1/client-tokens/{id}",
            operation_id="revokeClientToken",
            tag="Client tokens",
            summary="Revoke a client token",
            description="Effective for the token's very next call. Its record stays, for the "
            "audit log. `404 not_found` if the project has no client token with that id. A key "
            "or PAT limited to some agents revokes only the client tokens it minted itself "
            "(another's is `404 not_found` to it, as one that does not exist).",
            auth=Auth.SERVER,
            permission=Permission.AGENTS,
            parameters=[
                param(
                    "id",
                    "path",
                    "The `id` the token was minted with.",
                    {"type": "string", "pattern": CLIENT_TOKEN_ID_PATTERN},
                    required=True,
                    example="ctok_0123456789abcdefABCD",
                )
            ],
            answers={204: ok_answer("Revoked.", None, write=True)},
        ),
        *_api_key_operations(),
        describe_operation(
            "get",
            "/v1/projects/current",
            operation_id="getCurrentProject",
            tag="Projects and users",
            summary="The caller's project",
            description="Any API key, whatever its permissions, or a PAT with X-Project.",
            auth=Auth.SERVER,
            answers={200: ok_answer("The project.", ref("Project"))},
        ),
        describe_operation(
            "get",
            "/v1/user/me",
            operation_id="getCurrentUser",
            tag="Projects and users",
            summary="The token's user",
            description="For personal access tokens only (an API key is `403 "
            "insufficient_permissions`); takes no X-Project.",
            auth=Auth.PAT,
            answers={200: ok_answer("The user and the projects the token reaches.", ref("User"))},
        ),
        (
            "/v1/openapi.json",
            "get",
            {
                "operationId": "getOpenApiDocument",
                "tags": ["Description"],
                "summary": "This document",
                "description": "The OpenAPI 3.1 description of /v1 and /client. No token needed.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The document.",
                        "headers": {"X-Request-Id": header_ref("X-Request-Id")},
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["openapi", "info", "paths"],
                                    "properties": {"openapi": {"const": "3.1.0"}},
                                }
                            }
                        },
                    },
                    "400": {"$ref": "#/components/responses/Error400"},
                    "403": {"$ref": "#/components/responses/Error403"},
                },
            },
        ),
        (
            "/v1/credentials/revoke",
            "post",
            {
                "operationId": "revokeReportedCredentials",
                "tags": ["Credentials"],
                "summary": "Report leaked tokens",
                "description": "Anyone who finds a Reminix token (of any kind) can end it here; "
                "no token is needed. Every one that still works is revoked at once and its "
                "owners are emailed where the report came from. The answer is the same "
                "whatever the strings were: it never says which were real. Strings that are "
                f"not a token of ours never reach the database. {REPORTS_PER_MINUTE} reports "
                "a minute per address.",
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["credentials"],
                                "properties": {
                                    "credentials": {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": MAX_CREDENTIALS,
                                        "items": {
                                            "type": "string",
                                            "maxLength": MAX_CREDENTIAL_LENGTH,
                                        },
                                    }
                                },
                            },
                            "example": {"credentials": ["reminix_sk_…"]},
                        }
                    },
                },
                "responses": {
                    "202": {
                        "description": "Received; each working token among them is revoked.",
                        "headers": {"X-Request-Id": header_ref("X-Request-Id")},
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["received"],
                                    "properties": {"received": {"type": "integer"}},
                                }
                            }
                        },
                    },
                    **{
                        str(status): {"$ref": f"#/components/responses/Error{status}"}
                        for status in (400, 403, 411, 413, 429, 500, 503)
                    },
                },
            },
        ),
        (
            "/v1/credentials/github-secret-scanning",
            "post",
            {
                "operationId": "receiveGitHubSecretScanningAlert",
                "tags": ["Credentials"],
                "summary": "GitHub secret-scanning alerts",
                "description": "For GitHub's secret-scanning partner programme: the body is "
                "signed (ECDSA P-256, SHA-256) by the key GITHUB-PUBLIC-KEY-IDENTIFIER names, "
                "in GITHUB-PUBLIC-KEY-SIGNATURE; an unsigned or badly signed body is `403`. "
                "Each token is answered `true_positive` or `false_positive` by its SHA-256. "
                "A working token is revoked (or, for a project that only reports, left "
                "working) and its owners told; a project's token raises a high alert. `404` "
                "where no GitHub key is configured.",
                "security": [],
                "parameters": [
                    param(
                        "GITHUB-PUBLIC-KEY-IDENTIFIER",
                        "header",
                        "Which of GitHub's keys signed the body.",
                        {"type": "string"},
                        required=True,
                    ),
                    param(
                        "GITHUB-PUBLIC-KEY-SIGNATURE",
                        "header",
                        "The base64 DER ECDSA signature of the raw body.",
                        {"type": "string"},
                        required=True,
                    ),
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 100,
                                "items": {
                                    "type": "object",
                                    "required": ["token"],
                                    "properties": {
                                        "token": {"type": "string"},
                                        "type": {"type": "string"},
                                        "url": {"type": "string"},
                                        "source": {"type": "string"},
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "Feedback for each token, in the order given.",
                        "headers": {"X-Request-Id": header_ref("X-Request-Id")},
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["token_hash", "token_type", "label"],
                                        "properties": {
                                            "token_hash": {"type": "string"},
                                            "token_type": {"type": "string"},
                                            "label": {"enum": ["true_positive", "false_positive"]},
                                        },
                                    },
                                }
                            }
                        },
                    },
                    **{
                        str(status): {"$ref": f"#/components/responses/Error{status}"}
                        for status in (400, 403, 404, 411, 413, 500, 503)
                    },
                },
            },
        ),
        describe_operation(
            "get",
            "/client/token",
            operation_id="getClientToken",
            tag="Client API",
            summary="The browser's own token",
            description="Its project, its `context` and when it expires. Never its "
            "`serverContext`.",
            auth=Auth.CLIENT,
            answers={200: ok_answer("The token.", ref("ClientTokenInfo"))},
        ),
        describe_preflight("/client/token", "GET", "preflightClientToken"),
        describe_operation(
            "post",
            "/client/agents/{name}/invoke",
            operation_id="invokeAgentFromClient",
            tag="Client API",
            summary="Invoke an agent from a browser",
            description=f"As `POST /v1/agents/{{name}}/invoke`, with a client token. The agent "
            f"sees the token's `context` and `serverContext`; the body may not set `context` "
            f"(`400 invalid_field_value`). {INVOKE_DESCRIPTION} {agent_404}",
            auth=Auth.CLIENT,
            parameters=[AGENT_NAME_PARAM],
            body=Body(
                {
                    **obj(PAYLOAD, closed=False, oneOf=ONE_OF_PROMPT_OR_INPUT),
                    # Set by the token; the body may not carry it.
                    "not": {"required": ["context"]},
                },
                example={"prompt": "hello"},
            ),
            answers={200: ok_answer("The agent's answer.", ref("InvokeResult"), write=True)},
        ),
        describe_preflight("/client/agents/{name}/invoke", "POST", "preflightClientInvoke"),
    ]


def _api_key_operations() -> list[tuple[str, str, Schema]]:
    """/v1/api-keys: a project's keys managed by automation (api/api_keys.py)."""
    key_id = param(
        "id",
        "path",
        "The key's `id`.",
        {"type": "string", "pattern": "^key_[0-9]+$"},
        required=True,
        example="key_123",
    )
    who = (
        " Takes a personal access token with the `keys` permission and X-Project (an API key "
        "is `403 insufficient_permissions`); the audit log names the token's person."
    )

    def op(
        method: str, path: str, operation_id: str, summary: str, description: str, **kw: Any
    ) -> tuple[str, str, Schema]:
        return describe_operation(
            method,
            path,
            operation_id=operation_id,
            tag="API keys",
            summary=summary,
            description=description + who,
            auth=Auth.PAT_ON_PROJECT,
            permission=KEYS,
            **kw,
        )

    name = {"type": "string", "minLength": 1, "maxLength": 100, "description": "One line."}
    return [
        op(
            "get",
            "/v1/api-keys",
            "listApiKeys",
            "List API keys",
            "The project's API keys, newest first, revoked and expired ones included.",
            parameters=[LIMIT_PARAM, CURSOR_PARAM],
            answers={200: ok_answer("A page of keys.", ref("ApiKeyPage"))},
        ),
        op(
            "post",
            "/v1/api-keys",
            "createApiKey",
            "Create an API key",
            "The new key, with its secret in this answer only. Within the project's lifetime "
            "policy: an `expiresAt` past it is `400 invalid_field_value`. A project has at most "
            f"{MAX_WORKING_KEYS_PER_PROJECT} working keys (not revoked or expired): one more "
            "is `400 invalid_request`.",
            body=Body(
                obj(
                    {
                        "name": name,
                        "permissions": {
                            "type": "array",
                            "items": {"enum": ["agents", "read", "write"]},
                            "minItems": 1,
                            "maxItems": 3,
                            "uniqueItems": True,
                            "description": "Absent: all three.",
                        },
                        "expiresAt": {
                            **TIMESTAMP,
                            "description": "Later than now and at most ten years from now. "
                            "Absent: never expires.",
                        },
                        "agents": {
                            "type": "array",
                            "items": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                            "minItems": 1,
                            "maxItems": 50,
                            "description": "The only agents it may use. Absent: every agent.",
                        },
                        "agentActions": {
                            "type": "array",
                            "items": {"enum": ["agents:invoke", "agents:chat"]},
                            "minItems": 1,
                            "maxItems": 2,
                            "uniqueItems": True,
                            "description": "What it may do with them. Absent: both.",
                        },
                        "allowedNetworks": {
                            "type": "array",
                            "items": {"type": "string"},
                            "minItems": 1,
                            "maxItems": 20,
                            "description": "Networks (CIDR) it may be used from. Absent: any.",
                        },
                    },
                    required=["name"],
                ),
                example={"name": "CI deploys", "permissions": ["agents"]},
            ),
            answers={201: ok_answer("Created.", ref("ApiKeyCreated"), write=True)},
        ),
        op(
            "get",
            "/v1/api-keys/{id}",
            "getApiKey",
            "One API key",
            "`404 not_found` if the project has no key with that id.",
            parameters=[key_id],
            answers={200: ok_answer("The key.", ref("ApiKey"))},
        ),
        op(
            "patch",
            "/v1/api-keys/{id}",
            "renameApiKey",
            "Rename an API key",
            "Only its name changes. `409` if the key is revoked or expired.",
            parameters=[key_id],
            body=Body(obj({"name": name}, required=["name"]), example={"name": "CI deploys (old)"}),
            answers={200: ok_answer("Renamed.", ref("ApiKey"), write=True)},
        ),
        op(
            "delete",
            "/v1/api-keys/{id}",
            "revokeApiKey",
            "Revoke an API key",
            "For good, from its very next call, and the client tokens it minted with it.",
            parameters=[key_id],
            answers={204: ok_answer("Revoked.", None, write=True)},
        ),
        op(
            "post",
            "/v1/api-keys/{id}/roll",
            "rollApiKey",
            "Roll an API key",
            "A new secret, in this answer only; the one it had keeps working for "
            "`overlapSeconds` (0 to 7 days; 0: stops now), then gets `401 expired_api_key` "
            "naming the new one. `409` if the key is revoked or expired.",
            parameters=[key_id],
            body=Body(
                obj(
                    {
                        "overlapSeconds": {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": 604800,
                            "default": 0,
                            "description": "Absent: 0, the secret it had stops now (the "
                            "dashboard's form starts at 24 hours).",
                        }
                    },
                ),
                required=False,
                example={"overlapSeconds": 86400},
            ),
            answers={201: ok_answer("Rolled.", ref("ApiKeyCreated"), write=True)},
        ),
        op(
            "post",
            "/v1/api-keys/{id}/suspend",
            "suspendApiKey",
            "Suspend an API key",
            "Its calls get `401 suspended_api_key` with the reason until it is resumed. "
            "`409` if the key is revoked or expired.",
            parameters=[key_id],
            body=Body(
                obj({"reason": {**name, "maxLength": 200}}, required=["reason"]),
                example={"reason": "Found in a public log"},
            ),
            answers={200: ok_answer("Suspended.", ref("ApiKey"), write=True)},
        ),
        op(
            "post",
            "/v1/api-keys/{id}/resume",
            "resumeApiKey",
            "Resume an API key",
            "It works again from its next call. `409` if the key is revoked or expired.",
            parameters=[key_id],
            answers={200: ok_answer("Resumed.", ref("ApiKey"), write=True)},
        ),
    ]
