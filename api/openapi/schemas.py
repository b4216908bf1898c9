"""The contract's error codes and the JSON shapes the API takes and answers.

api/ never imports agents/, so the agent endpoints' fields are written out by hand here
(their rules live in agents/api.py and agents/models.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from api.views import MAX_CONTEXT_BYTES

type Schema = dict[str, Any]

MAX_LIMIT = 100
AGENT_NAME_PATTERN = "^[A-Za-z0-9_-]+$"
# A token pasted as an agent name must not end up in lists and logs (agents/api.py).
TOKEN_SHAPED = "[Rr][Ee][Mm][Ii][Nn][Ii][Xx]_([Ss][Kk]|[Cc][Tt]|[Pp][Aa][Tt])_"
CLIENT_TOKEN_ID_PATTERN = "^ctok_[0-9A-Za-z]{20}$"
EXAMPLE_AGENT = "my-agent"

# The contract's error codes (shared/CONTRACT.md, "Errors"), by status.
ERROR_CODES: dict[int, dict[str, str]] = {
    400: {
        "invalid_request": "the body is not a JSON object sent as `application/json` (or "
        "not strict JSON: NaN, Infinity, overflowing numbers, lone surrogates, NUL, nesting "
        "deeper than 64, a name given twice in one object), or an Idempotency-Key was used "
        "for another request, or the Host is not this server's",
        "missing_required_field": "a required field or header is missing; the message names it",
        "invalid_field_value": "a field, query parameter or header has a bad value; the "
        "message names it",
    },
    401: {
        "missing_api_key": "no Authorization header, or not `Bearer`",
        "invalid_api_key": "malformed, bad checksum, unknown, or a token sent in the URL",
        "expired_api_key": "revoked, past its expiry, or past the overlap of a rolled key; "
        "the message says which",
        "suspended_api_key": "an API key suspended by its project, or a client token it "
        "minted, until the key is resumed (reversible; for a key the message gives the "
        "reason)",
    },
    403: {
        "insufficient_permissions": "the token lacks the permission, a client token on /v1, "
        "an API key or PAT on /client, a PAT without access to X-Project, an origin the "
        "project does not allow",
        "https_required": "a token sent over plain http in production: rotate it",
        "ip_not_allowed": "the caller's address is outside the API key's or PAT's network "
        "allowlist (set on the dashboard); the message names the address",
    },
    404: {
        "not_found": "nothing is at this address",
        "agent_not_found": "no agent of that name in the caller's project",
    },
    409: {
        "idempotency_in_progress": "a request with this Idempotency-Key is still running: "
        "retry after `Retry-After` seconds to get its answer",
        "invalid_request": "a request with this Idempotency-Key made a token whose secret is "
        "not shown again, or the key cannot be renamed, rolled, suspended or resumed "
        "(revoked or expired)",
    },
    411: {
        "invalid_request": "the body was sent in chunks (Transfer-Encoding), without a "
        "Content-Length: send its length"
    },
    413: {"invalid_request": "the body is larger than the server accepts"},
    429: {"rate_limit_exceeded": "the token made too many calls this minute"},
    500: {"internal_error": "something failed on our side; quote the request id"},
    503: {"service_unavailable": "a store the call needs is down or too slow; retry later"},
}
ERROR_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    411: "Length required",
    413: "Body too large",
    429: "Rate limited",
    500: "Internal error",
    503: "Unavailable",
}


# Schemas ------------------------------------------------------------------------------


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(
    properties: Mapping[str, Schema],
    *,
    required: Sequence[str] = (),
    closed: bool = True,
    **extra: Any,
) -> Schema:
    """An object schema, `closed` (no field beyond those listed): every answer, and the
    bodies of writes that make or change a credential or an agent, which refuse a field
    they do not take (api.bodies.the_fields_taken). Invoke's and chat's bodies are open:
    what they carry is the agent's."""
    schema: Schema = {"type": "object", "properties": dict(properties), **extra}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


def text(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


TIMESTAMP: Schema = {"type": "string", "format": "date-time"}
JSON_OBJECT: Schema = {"type": "object", "description": "Any JSON object."}


def page_schema(item: str) -> Schema:
    return obj(
        {
            "data": {"type": "array", "items": ref(item)},
            "hasMore": {"type": "boolean", "description": "More rows follow this page."},
            "nextCursor": {
                "type": ["string", "null"],
                "description": "Pass as `cursor` to read the next page; null on the last.",
            },
        },
        required=["data", "hasMore", "nextCursor"],
    )


def context_schema(field: str, who: str) -> Schema:
    return {
        "type": "object",
        "description": f"{who} A JSON object of at most {MAX_CONTEXT_BYTES} bytes (compact "
        f"JSON in UTF-8); a larger one, or one holding a Reminix token, is "
        f"`400 invalid_field_value` naming `{field}`.",
    }


SCHEMAS: dict[str, Schema] = {
    "Error": obj(
        {
            "error": obj(
                {
                    "code": text("What went wrong, for programs: one of the contract's codes."),
                    "message": text("What went wrong, for people; names the field at fault."),
                    "status": {"type": "integer", "description": "The HTTP status, repeated."},
                    "requestId": text(
                        "Also in the X-Request-Id header.", pattern="^req_[0-9a-f]{24}$"
                    ),
                },
                required=["code", "message", "status", "requestId"],
            )
        },
        required=["error"],
        description="The envelope of every error answer.",
    ),
    "AgentName": text(
        "Letters, digits, `-` and `_`; case-sensitive.",
        pattern=AGENT_NAME_PATTERN,
        minLength=1,
        maxLength=64,
    ),
    "Agent": obj(
        {
            "name": ref("AgentName"),
            "kind": text("The runtime. `echo` answers with what it is given.", enum=["echo"]),
            "description": text("Free text.", maxLength=500),
            "config": JSON_OBJECT,
            "createdAt": TIMESTAMP,
            "updatedAt": TIMESTAMP,
        },
        required=["name", "kind", "description", "config", "createdAt", "updatedAt"],
    ),
    "AgentPage": page_schema("Agent"),
    "ChatMessage": obj(
        {
            "role": text("Who said it.", enum=["system", "user", "assistant"]),
            "content": {"type": "string"},
        },
        required=["role", "content"],
    ),
    "ExecutionSummary": obj(
        {
            "id": text("The execution's id, as in the execution logs.", pattern="^exec_[0-9a-f]+$"),
            "status": {"type": "string", "enum": ["success", "failed"]},
            "durationMs": {"type": "number", "minimum": 0},
        },
        required=["id", "status", "durationMs"],
    ),
    "InvokeResult": obj(
        {
            "output": {"description": "What the agent answered: any JSON value."},
            "execution": ref("ExecutionSummary"),
        },
        required=["output", "execution"],
    ),
    "ChatResult": obj(
        {
            "messages": {
                "type": "array",
                "items": ref("ChatMessage"),
                "description": "The conversation sent, then the agent's reply.",
            },
            "execution": ref("ExecutionSummary"),
        },
        required=["messages", "execution"],
    ),
    "Execution": obj(
        {
            "id": text("`exec_…`", pattern="^exec_[0-9a-f]+$"),
            "agent": text("The agent's name when it ran (the agent may be gone since)."),
            "type": {"type": "string", "enum": ["invoke", "chat"]},
            "status": {"type": "string", "enum": ["success", "failed"]},
            "durationMs": {"type": "number", "minimum": 0},
            "createdAt": TIMESTAMP,
            "input": {
                "type": "object",
                "description": "What the agent was given: `prompt` or `input` (or "
                "`messages`), with `context` and, from the Client API, `serverContext`. "
                "Each is kept whole up to 16,384 characters of JSON; a longer one is kept "
                'as `{"truncated": true, "jsonChars": n, "start": "…"}` (its JSON\'s '
                "first 8,192 characters).",
            },
            "output": {
                "description": "What the agent answered: any JSON value, kept as `input`'s "
                "parts are (whole up to 16,384 characters of JSON). The caller's own answer "
                "is never cut."
            },
        },
        required=["id", "agent", "type", "status", "durationMs", "createdAt", "input", "output"],
    ),
    "ExecutionPage": page_schema("Execution"),
    "ApiKey": obj(
        {
            "id": text("`key_…`", pattern="^key_[0-9]+$"),
            "name": {"type": "string", "maxLength": 100},
            "hint": text("The key's first and last characters, to recognise it by."),
            "status": text("", enum=["active", "suspended", "expired", "revoked"]),
            "permissions": {"type": "array", "items": {"enum": ["agents", "read", "write"]}},
            "agents": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The only agents it may use; empty: every agent.",
            },
            "agentActions": {
                "type": "array",
                "items": {"enum": ["agents:invoke", "agents:chat"]},
                "description": "What it may do with them; empty: both.",
            },
            "allowedNetworks": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Networks (CIDR) it may be used from; empty: any.",
            },
            "createdAt": TIMESTAMP,
            "expiresAt": {**TIMESTAMP, "type": ["string", "null"]},
            "lastUsedAt": {
                **TIMESTAMP,
                "type": ["string", "null"],
                "description": "The last successful call made with the key itself (its "
                "client tokens' calls do not count). Updated at most once a minute; null "
                "if never.",
            },
            "lastUsedIp": {
                "type": ["string", "null"],
                "description": "The address that call came from (IPv4 or IPv6).",
            },
            "lastRefusedAt": {
                **TIMESTAMP,
                "type": ["string", "null"],
                "description": "The last call made with the key itself after it was revoked "
                "or expired (refused, 401 expired_api_key): it is still tried. Its client "
                "tokens' calls do not count. Updated at most once a minute; null if never.",
            },
            "lastRefusedIp": {
                "type": ["string", "null"],
                "description": "The address that call came from (IPv4 or IPv6).",
            },
            "revokedAt": {**TIMESTAMP, "type": ["string", "null"]},
            "suspendedAt": {**TIMESTAMP, "type": ["string", "null"]},
            "suspendedReason": {"type": ["string", "null"]},
            "previousSecret": {
                "type": ["object", "null"],
                "description": "After a roll, the secret it had, while it still works.",
                "properties": {"hint": {"type": "string"}, "expiresAt": TIMESTAMP},
            },
        },
        required=["id", "name", "hint", "status", "permissions", "createdAt"],
    ),
    "ApiKeyPage": page_schema("ApiKey"),
    "ClientTokenCreated": obj(
        {
            "token": text(
                "The client token. Shown in this answer only: never again, not even to a "
                "retry with the same Idempotency-Key.",
                pattern="^reminix_ct_[0-9A-Za-z]{36}$",
            ),
            "id": text(
                "Revoke it with DELETE /v1/client-tokens/{id}.", pattern=CLIENT_TOKEN_ID_PATTERN
            ),
            "expiresAt": TIMESTAMP,
        },
        required=["token", "id", "expiresAt"],
    ),
    "ClientTokenInfo": obj(
        {
            "projectId": text("The project the token acts for."),
            "context": {"type": "object", "description": "The `context` it was minted with."},
            "expiresAt": TIMESTAMP,
        },
        required=["projectId", "context", "expiresAt"],
        description="What a browser may know of its own token: never its `serverContext`.",
    ),
    "Project": obj(
        {"id": {"type": "string"}, "name": {"type": "string"}, "slug": {"type": "string"}},
        required=["id", "name", "slug"],
    ),
    "User": obj(
        {
            "id": text("`user_…`", pattern="^user_[0-9]+$"),
            "email": {"type": "string"},
            "name": {"type": "string"},
            "projects": {
                "type": "array",
                "items": ref("Project"),
                "description": "The projects this token reaches now, by name.",
            },
        },
        required=["id", "email", "name", "projects"],
    ),
}

SCHEMAS["ApiKeyCreated"] = obj(
    {
        **SCHEMAS["ApiKey"]["properties"],
        "secret": text(
            "The key's secret (after a roll, its new one). Shown in this answer only: never "
            "again, not even to a retry with the same Idempotency-Key.",
            pattern="^reminix_sk_[0-9A-Za-z]{36}$",
        ),
    },
    required=[*SCHEMAS["ApiKey"]["required"], "secret"],
)

PAYLOAD = {
    "prompt": text("Text for the agent. Either this or `input`."),
    "input": {
        "type": "object",
        "description": "Structured input for the agent, instead of `prompt`.",
    },
}
ONE_OF_PROMPT_OR_INPUT = [{"required": ["prompt"]}, {"required": ["input"]}]
