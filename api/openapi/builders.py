"""How one operation is described: its parameters and headers, its answers, and what
its kind of caller implies (the token, X-Project, Idempotency-Key, the errors)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from api.cors import ALLOWED_HEADERS, PREFLIGHT_MAX_AGE
from api.idempotency import MAX_KEY_LENGTH
from api.openapi.schemas import (
    ERROR_CODES,
    ERROR_TITLES,
    EXAMPLE_AGENT,
    MAX_LIMIT,
    Schema,
    ref,
)


class Auth(StrEnum):
    """Who may call an operation."""

    SERVER = "server"  # an API key, or a PAT naming the project in X-Project
    PAT = "pat"  # a personal access token, acting as its user
    PAT_ON_PROJECT = "pat_on_project"  # a personal access token naming X-Project
    CLIENT = "client"  # a client token, on the Client API
    NONE = "none"  # nobody needs a token


SECURITY: dict[Auth, list[dict[str, list[str]]]] = {
    Auth.SERVER: [{"apiKey": []}, {"personalAccessToken": []}],
    Auth.PAT: [{"personalAccessToken": []}],
    Auth.PAT_ON_PROJECT: [{"personalAccessToken": []}],
    Auth.CLIENT: [{"clientToken": []}],
    Auth.NONE: [],
}


@dataclass(frozen=True)
class Body:
    """A JSON request body."""

    schema: Schema
    required: bool = True
    example: object = None


# Parameters and headers -----------------------------------------------------------------


def header(description: str, schema: Schema, *, required: bool = False) -> Schema:
    return {"description": description, "required": required, "schema": schema}


INTEGER: Schema = {"type": "integer"}
HEADERS: dict[str, Schema] = {
    "X-Request-Id": header(
        "The request's id, as in the error envelope. Quote it when asking for help.",
        {"type": "string", "pattern": "^req_[0-9a-f]{24}$"},
        required=True,
    ),
    "X-RateLimit-Limit": header("Calls this token may make each minute.", INTEGER),
    "X-RateLimit-Remaining": header("Calls left this minute.", INTEGER),
    "X-RateLimit-Reset": header("When the minute ends, in Unix seconds.", INTEGER),
    "X-Reminix-Token-Expires": header(
        "When the API key or personal access token expires (UTC, ISO 8601), on every "
        "answer in its last 7 days.",
        {"type": "string", "format": "date-time"},
    ),
    "Retry-After": header("Seconds to wait before trying again.", INTEGER, required=True),
    "WWW-Authenticate": header(
        'How to authenticate (RFC 6750): `Bearer realm="reminix"`.',
        {"type": "string", "pattern": "^Bearer( |$)"},
        required=True,
    ),
    "Idempotent-Replayed": header(
        "`true` on the first answer replayed for a repeated Idempotency-Key.",
        {"type": "string", "enum": ["true"]},
    ),
}
RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def header_ref(name: str) -> Schema:
    return {"$ref": f"#/components/headers/{name}"}


def param(name: str, where: str, description: str, schema: Schema, **extra: Any) -> Schema:
    return {"name": name, "in": where, "description": description, "schema": schema, **extra}


AGENT_NAME_PARAM = param(
    "name", "path", "The agent's name.", ref("AgentName"), required=True, example=EXAMPLE_AGENT
)
LIMIT_PARAM = param(
    "limit",
    "query",
    f"Rows per page, 1 to {MAX_LIMIT}.",
    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 20},
)
CURSOR_PARAM = param(
    "cursor",
    "query",
    "The `nextCursor` of the previous page. Any other value is `400 invalid_field_value`.",
    {"type": "string"},
)
X_PROJECT_PARAM = param(
    "X-Project",
    "header",
    "With a personal access token: the project to act on (its id or slug); without it a PAT "
    "gets `400 missing_required_field`. Ignored for API keys, which act for their own project.",
    {"type": "string", "pattern": "^[-A-Za-z0-9_]{1,64}$"},
)
X_PROJECT_REQUIRED_PARAM = param(
    "X-Project",
    "header",
    "The project to act on (its id or slug); without it `400 missing_required_field`.",
    {"type": "string", "pattern": "^[-A-Za-z0-9_]{1,64}$"},
    example="my-project",
    required=True,
)
IDEMPOTENCY_PARAM = param(
    "Idempotency-Key",
    "header",
    f"1 to {MAX_KEY_LENGTH} printable characters, never a Reminix token (`400`). The same "
    "key from the same project within 24 hours answers the first result again "
    "(`Idempotent-Replayed: true`) instead of acting twice; with a different method, path or "
    "body it is `400 invalid_request`.",
    {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
)

# Answers ------------------------------------------------------------------------------


def error_answer(status: int) -> Schema:
    codes = ERROR_CODES[status]
    headers: dict[str, Schema] = {"X-Request-Id": header_ref("X-Request-Id")}
    if status in (429, 503):
        headers["Retry-After"] = header_ref("Retry-After")
    elif status == 409:
        # Only with idempotency_in_progress.
        headers["Retry-After"] = {**HEADERS["Retry-After"], "required": False}
    if status == 401:
        headers["WWW-Authenticate"] = header_ref("WWW-Authenticate")
    for name in RATE_LIMIT_HEADERS:
        headers[name] = {**HEADERS[name], "required": True} if status == 429 else header_ref(name)
    listed = "; ".join(f"`{code}`: {why}" for code, why in codes.items())
    return {
        "description": f"{ERROR_TITLES[status]}. {listed}.",
        "headers": headers,
        "content": {
            "application/json": {
                "schema": {
                    "allOf": [
                        ref("Error"),
                        {
                            "properties": {
                                "error": {
                                    "properties": {
                                        "code": {"enum": list(codes)},
                                        "status": {"const": status},
                                    }
                                }
                            }
                        },
                    ]
                }
            }
        },
    }


def ok_answer(description: str, schema: Schema | None, *, write: bool = False) -> Schema:
    headers: dict[str, Schema] = {
        name: header_ref(name)
        for name in ("X-Request-Id", *RATE_LIMIT_HEADERS, "X-Reminix-Token-Expires")
    }
    if write:
        headers["Idempotent-Replayed"] = header_ref("Idempotent-Replayed")
    answer: Schema = {"description": description, "headers": headers}
    if schema is not None:
        answer["content"] = {"application/json": {"schema": schema}}
    return answer


# Operations -----------------------------------------------------------------------------

WRITES = {"post", "put", "patch", "delete"}


def describe_operation(
    method: str,
    path: str,
    *,
    operation_id: str,
    tag: str,
    summary: str,
    description: str,
    auth: Auth,
    permission: str | None = None,
    parameters: Sequence[Schema] = (),
    body: Body | None = None,
    answers: Mapping[int, Schema],
) -> tuple[str, str, Schema]:
    """One operation, with what its kind of caller implies: the token, X-Project for a PAT
    on a project, Idempotency-Key on writes, and the errors it can answer."""
    write = method in WRITES
    params = list(parameters)
    if auth is Auth.SERVER:
        params.append(X_PROJECT_PARAM)
    elif auth is Auth.PAT_ON_PROJECT:
        params.append(X_PROJECT_REQUIRED_PARAM)
    if write:
        params.append(IDEMPOTENCY_PARAM)
    errors = [400, 401, 403, 429, 500, 503]
    if "{" in path:
        errors.append(404)
    if write:
        errors.append(409)
    if body is not None:
        errors += [411, 413]
    operation: Schema = {
        "operationId": operation_id,
        "tags": [tag],
        "summary": summary,
        "description": description,
        "security": SECURITY[auth],
        "responses": {
            **{str(status): answer for status, answer in answers.items()},
            **{str(s): {"$ref": f"#/components/responses/Error{s}"} for s in sorted(errors)},
        },
    }
    if permission:
        operation["x-permission"] = permission
    if params:
        operation["parameters"] = params
    if body is not None:
        content: Schema = {"schema": body.schema}
        if body.example is not None:
            content["example"] = body.example
        operation["requestBody"] = {
            "required": body.required,
            "content": {"application/json": content},
        }
    return path, method, operation


def describe_preflight(path: str, methods: str, operation_id: str) -> tuple[str, str, Schema]:
    """A CORS preflight: browsers send it, with no token, before a Client API call."""
    cors = {
        "Access-Control-Allow-Origin": header(
            "The origin, echoed.", {"type": "string"}, required=True
        ),
        "Access-Control-Allow-Methods": header(methods, {"type": "string"}, required=True),
        "Access-Control-Allow-Headers": header(ALLOWED_HEADERS, {"type": "string"}, required=True),
        "Access-Control-Max-Age": header(f"{PREFLIGHT_MAX_AGE} seconds.", INTEGER, required=True),
        "X-Request-Id": header_ref("X-Request-Id"),
    }
    return (
        path,
        "options",
        {
            "operationId": operation_id,
            "tags": ["Client API"],
            "summary": "CORS preflight",
            "description": "Answered for an origin that some project allows (Settings → General "
            "→ Client API: allowed browser origins); any other origin is `403 "
            "insufficient_permissions` without CORS headers. The call itself is then refused "
            "unless the token's own project allows the origin.",
            "security": [],
            "parameters": [
                *([AGENT_NAME_PARAM] if "{name}" in path else []),
                param(
                    "Origin",
                    "header",
                    "The page's origin, as the browser sends it.",
                    {"type": "string"},
                    required=True,
                    example="https://app.example.com",
                ),
                param(
                    "Access-Control-Request-Method",
                    "header",
                    "The method the page means to use.",
                    {"type": "string"},
                ),
            ],
            "responses": {
                "204": {"description": "The origin may call.", "headers": cors},
                "400": {"$ref": "#/components/responses/Error400"},
                "403": {"$ref": "#/components/responses/Error403"},
                "503": {"$ref": "#/components/responses/Error503"},
            },
        },
    )
