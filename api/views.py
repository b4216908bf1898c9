"""/v1 endpoints about tokens and the caller, and the Client API's /client/token."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse

from accounts.models import Project
from accounts.two_factor import has_two_factor
from api import errors
from api.authentication import ProjectCaller, Surface
from api.bodies import agent_names_param, json_body, ok, string_list, whole_number
from api.endpoint import ApiRequest, ClientApiRequest, ProjectApiRequest, api_view
from api.idempotency import SECRET_FIELDS_ATTRIBUTE
from api.permissions import Permission, scoped_agent_names
from apikeys.models import CLIENT_TOKEN_MAX_TTL, ClientToken
from apikeys.scopes import AGENT_ACTIONS, widening
from apikeys.services import (
    CLIENT_TOKEN_DEFAULT_TTL,
    client_token_create,
    client_token_revoke,
)
from core.client_ip import client_ip
from core.redact import holds_secret_spaced
from core.token_shape import holds_token_rest

MAX_CONTEXT_BYTES = 4096


def project_json(project: Project) -> dict[str, Any]:
    return {"id": project.slug, "name": project.name, "slug": project.slug}


@api_view(["GET"])
def project_current(request: ProjectApiRequest) -> HttpResponse:
    return ok(project_json(request.caller.project))


@api_view(["GET"], project_scoped=False)
def user_me(request: ApiRequest) -> HttpResponse:
    """The PAT's user and the projects the token reaches now: where it may act, as the
    API decides on each call (api.authentication), not only where its user is a member."""
    pat = request.caller.personal_token
    if pat is None:
        raise errors.insufficient_permissions(
            "/v1/user/me takes a personal access token (reminix_pat_…)."
        )
    user = pat.user
    projects = Project.objects.for_user(user).order_by("name")
    if pat.projects_restricted:
        projects = projects.filter(pk__in=pat.projects.values("pk"))
    if not has_two_factor(user):
        projects = projects.filter(require_two_factor=False)
    return ok(
        {
            "id": f"user_{user.pk}",
            "email": user.email,
            "name": user.name,
            "projects": [project_json(p) for p in projects if not pat.outlives_policy_of(p)],
        }
    )


def _context(body: dict[str, Any], field: str, *, required: bool) -> dict[str, Any]:
    if field not in body or body[field] is None:
        if required:
            raise errors.missing_required_field(field)
        return {}
    value = body[field]
    if not isinstance(value, dict):
        raise errors.invalid_field_value(field, "must be a JSON object.")
    # UTF-8, as the customer's JSON.stringify sends it: escaped to \uXXXX, a letter beyond
    # ASCII counted six bytes (an emoji twelve), and 2 KB of accented names was "6011".
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    size = len(text.encode())
    if size > MAX_CONTEXT_BYTES:
        raise errors.invalid_field_value(
            field, f"is {size} bytes of JSON; the limit is {MAX_CONTEXT_BYTES}."
        )
    if holds_secret_spaced(text) or any(map(holds_token_rest, _strings_joined(value))):
        # Kept with the token, shown on the Client tokens page (context), to the browser
        # (GET /client/token) and to the agent (serverContext), whose answer the browser reads.
        raise errors.invalid_field_value(
            field,
            "holds a Reminix token, which is never kept. Revoke that token if it was sent "
            "here by mistake.",
        )
    return value


def _strings_joined(value: dict[str, Any]) -> tuple[str, str]:
    """The context's strings end to end in order, keys and values, and its values alone:
    a token cut in two (its prefix a key, the rest its value; two settings) is whole in
    one of them. Iterative: strict_json allowed 64 levels, not Python's recursion's."""
    every: list[str] = []
    values: list[str] = []
    stack: list[tuple[bool, Any]] = [(False, value)]  # (is a key, the item)
    while stack:
        is_key, item = stack.pop()
        if is_key:
            every.append(item)
        elif isinstance(item, str):
            every.append(item)
            values.append(item)
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                stack += [(False, child), (True, key)]
        elif isinstance(item, list):
            stack.extend((False, child) for child in reversed(item))
    return "".join(every), "".join(values)


def _ttl(body: dict[str, Any]) -> int:
    ttl = whole_number(body.get("ttlSeconds", CLIENT_TOKEN_DEFAULT_TTL))
    if ttl is None or not 1 <= ttl <= CLIENT_TOKEN_MAX_TTL:
        raise errors.invalid_field_value(
            "ttlSeconds", f"must be a whole number of seconds from 1 to {CLIENT_TOKEN_MAX_TTL}."
        )
    return ttl


def _scope(body: dict[str, Any], caller: ProjectCaller) -> tuple[list[str], list[str]]:
    """The client token's agent scope: `permissions` (agents:invoke, agents:chat) and
    `agents` (names); each, when absent, the minting key's or PAT's own."""
    actions = string_list(body, "permissions", most=len(AGENT_ACTIONS)) or []
    unknown = [a for a in actions if a not in AGENT_ACTIONS]
    if unknown or ("permissions" in body and not actions):
        raise errors.invalid_field_value(
            "permissions", f"must name one or more of {', '.join(AGENT_ACTIONS)}."
        )
    names = agent_names_param(body, "agents") or []
    if "agents" in body and not names:
        raise errors.invalid_field_value("agents", "must be a non-empty list of agent names.")
    parent = caller.personal_token or caller.api_key
    assert parent is not None
    if beyond := widening(parent, names, actions):
        raise errors.insufficient_permissions(
            f"A client token can only narrow the {parent.noun} that mints it, which does "
            f"not have {beyond}."
        )
    return names, actions


CLIENT_TOKEN_FIELDS = ("context", "serverContext", "ttlSeconds", "permissions", "agents")


@api_view(["POST"], permission=Permission.AGENTS)
def client_token_create_view(request: ProjectApiRequest) -> HttpResponse:
    """Mint a client token for a browser: `context` it can read, `serverContext` only agents
    see, for `ttlSeconds` (default an hour, at most a day)."""
    body = json_body(request, takes=CLIENT_TOKEN_FIELDS)
    context = _context(body, "context", required=True)
    server_context = _context(body, "serverContext", required=False)
    ttl = _ttl(body)
    caller = request.caller
    agent_names, agent_actions = _scope(body, caller)
    client_token, token = client_token_create(
        project=caller.project,
        api_key=caller.api_key if caller.personal_token is None else None,
        personal_token=caller.personal_token,
        context=context,
        server_context=server_context,
        ttl_seconds=ttl,
        ip=client_ip(request),
        with_previous_secret=caller.previous_secret,
        agent_names=agent_names,
        agent_actions=agent_actions,
    )
    response = ok(
        {
            "token": token,
            "id": client_token.public_id,
            "expiresAt": client_token.expires_at.isoformat(),
        },
        status=201,
    )
    # An Idempotency-Key retry must not get the token again (api/idempotency.py).
    setattr(response, SECRET_FIELDS_ATTRIBUTE, ("token",))
    return response


@api_view(["DELETE"], permission=Permission.AGENTS)
def client_token_delete(request: ProjectApiRequest, public_id: str) -> HttpResponse:
    """Revoke a client token of the caller's project, at once. Its record stays. A key or
    PAT limited to some agents revokes only the client tokens it minted itself: its scope
    says which part of the project it serves, and another key's browsers are not that."""
    caller = request.caller
    client_token = ClientToken.objects.filter(project=caller.project, public_id=public_id).first()
    if client_token is None or (
        scoped_agent_names(caller) is not None and not _minted_by(client_token, caller)
    ):
        # Another key's token is, to a scoped key, as good as none: its ids are not
        # confirmed to exist.
        raise errors.not_found(message=f"No client token '{public_id}' this token may revoke.")
    # Audited as a mint or a deploy over /v1 is: from where, and by which key or PAT (a
    # key may revoke another key's client tokens).
    client_token_revoke(
        client_token=client_token,
        by=caller.user,
        ip=client_ip(request),
        via=str(caller.personal_token or caller.api_key),
    )
    return HttpResponse(status=204)


def _minted_by(client_token: ClientToken, caller: ProjectCaller) -> bool:
    if caller.personal_token is not None:
        return client_token.personal_token_id == caller.personal_token.pk
    return caller.api_key is not None and client_token.api_key_id == caller.api_key.pk


@api_view(["GET"], surface=Surface.CLIENT)
def client_token_info(request: ClientApiRequest) -> HttpResponse:
    """What a browser may know of its own token. Never the serverContext. Its end as known
    now (ClientToken.ends_at): a roll of the key that minted it writes nothing to its row."""
    client_token = request.caller.client_token
    return ok(
        {
            "projectId": client_token.project.slug,
            "context": client_token.context,
            # When it stops working: sooner than its own expiry if the key that minted it
            # was rolled since, and its secret ends first.
            "expiresAt": client_token.ends_at.isoformat(),
        }
    )
