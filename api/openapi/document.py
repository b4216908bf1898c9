"""The whole document, and GET /v1/openapi.json that serves it."""

from __future__ import annotations

import json
from functools import cache

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from api.cors import EXPOSED_HEADERS
from api.errors import ApiError, error_response, new_request_id
from api.openapi.builders import HEADERS, SECURITY, Auth, error_answer
from api.openapi.operations import all_operations
from api.openapi.schemas import ERROR_CODES, SCHEMAS, Schema

# The document changes only with a deploy: caches may keep it a few minutes.
CACHE_CONTROL = "public, max-age=300"

TAGS = [
    ("Agents", "The agents of the caller's project: the resource keys exist for."),
    ("Execution logs", "Every run of the project's agents."),
    ("Client tokens", "Short-lived tokens that a backend mints for one browser."),
    (
        "API keys",
        "A project's API keys, for automation that creates and rotates them: a personal "
        "access token given the `keys` permission, naming the project in X-Project.",
    ),
    ("Projects and users", "Who is calling, and for which project."),
    (
        "Client API",
        "Called from browsers with a client token, behind CORS: only origins the project "
        "allows get the answer (`Access-Control-Allow-Origin`, with `Access-Control-Expose-"
        f"Headers: {EXPOSED_HEADERS}`). A refusal that names no project (no token, a "
        "made-up one, an API key) is readable by every origin that some project allows, "
        "so a page can tell a token to replace from a network error.",
    ),
    ("Credentials", "Tokens found where they should not be: anyone may report them."),
    ("Description", "This document."),
]

API_DESCRIPTION = (
    "The token-authenticated API of Reminix: `/v1` for servers (API keys, and personal "
    "access tokens naming a project in `X-Project`), `/client` for browsers (client "
    "tokens). Send the token as `Authorization: Bearer <token>`; a token anywhere in the URL "
    "is refused. JSON in and out, field names in camelCase; bodies are strict JSON objects. "
    'Every error is `{"error": {"code", "message", "status", "requestId"}}`, and every '
    "answer carries `X-Request-Id` and `Cache-Control: no-store` (but this document, which "
    "may be cached for 5 minutes). HEAD is answered wherever "
    "GET is, without the body. Each token may make a "
    "number of calls a minute; answers to a call whose token was identified carry "
    "`X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`."
)


def _bearer(prefix: str, description: str) -> Schema:
    return {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": f"{prefix}…",
        "description": description,
    }


@cache
def openapi_document() -> Schema:
    """The whole document (built once; callers must not change it)."""
    paths: dict[str, Schema] = {}
    for path, method, operation in all_operations():
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Reminix API", "version": "v1", "description": API_DESCRIPTION},
        "servers": [{"url": "/", "description": "This deployment."}],
        "security": SECURITY[Auth.SERVER],
        "tags": [{"name": name, "description": about} for name, about in TAGS],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": _bearer(
                    "reminix_sk_",
                    "An API key (Settings → API Keys). Acts for its project with its "
                    "permissions: `agents`, `read`, `write`.",
                ),
                "personalAccessToken": _bearer(
                    "reminix_pat_",
                    "A personal access token (account menu). Acts as its user, in the project "
                    "named by `X-Project`, with the permissions it was given.",
                ),
                "clientToken": _bearer(
                    "reminix_ct_",
                    "A client token (`POST /v1/client-tokens`). Reaches only `/client`.",
                ),
            },
            "schemas": SCHEMAS,
            "headers": HEADERS,
            "responses": {f"Error{status}": error_answer(status) for status in ERROR_CODES},
        },
    }


@cache
def _document_bytes() -> bytes:
    return json.dumps(openapi_document(), ensure_ascii=False, separators=(",", ":")).encode()


@csrf_exempt
def openapi_json(request: HttpRequest) -> HttpResponse:
    """GET /v1/openapi.json: the document, to anyone. Not an @api_view: it reads no token
    and counts against none."""
    request_id = new_request_id()
    response: HttpResponse
    if request.method in ("GET", "HEAD"):
        body = _document_bytes()
        response = HttpResponse(b"" if request.method == "HEAD" else body)
        response["Content-Type"] = "application/json"
        response["Content-Length"] = str(len(body))
        response["Cache-Control"] = CACHE_CONTROL
    else:
        refused = ApiError(
            405, "invalid_request", "Use GET on this endpoint.", headers={"Allow": "GET, HEAD"}
        )
        response = error_response(refused, request_id)
        response["Cache-Control"] = "no-store"
    response["X-Request-Id"] = request_id
    return response
