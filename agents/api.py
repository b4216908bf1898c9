"""The /v1 agent endpoints (shared/CONTRACT.md, "Endpoints")."""

from __future__ import annotations

import json
import re
from typing import Any

from django.http import HttpResponse

from agents.models import AGENT_NAME_PATTERN, Agent, Execution
from agents.runtime import Run, agent_chat, agent_invoke
from agents.services import TooManyAgents, agent_deploy
from api import errors
from api.authentication import Surface
from api.bodies import json_body, looks_like_a_token, ok
from api.endpoint import ClientApiRequest, ProjectApiRequest, api_view
from api.listing import cursor_param, is_row_id, limit_param, page_json
from api.lookup import Resource
from api.permissions import (
    CHAT,
    INVOKE,
    Permission,
    require_agent_in_scope,
    require_agent_scope,
    require_permission,
    scoped_agent_names,
)
from core.client_ip import client_ip
from core.paging import keyset_page
from core.redact import holds_token

NAME = re.compile(AGENT_NAME_PATTERN)
CHAT_ROLES = {"system", "user", "assistant"}
# An agent's configuration, as compact JSON in UTF-8. Each API worker keeps the agents it
# was asked for beside the callers it caches (api/callers.py): without a limit, a few
# agents with configs that fill the 2.5 MB body, invoked in turn, could fill its memory.
MAX_CONFIG_BYTES = 65_536


def agent_json(agent: Agent) -> dict[str, Any]:
    return {
        "name": agent.name,
        "kind": agent.kind,
        "description": agent.description,
        "config": agent.config,
        "createdAt": agent.created_at.isoformat(),
        "updatedAt": agent.updated_at.isoformat(),
    }


def execution_json(execution: Execution) -> dict[str, Any]:
    return {
        "id": execution.public_id,
        "agent": execution.agent_name,
        "type": execution.type,
        "status": execution.status,
        "durationMs": round(execution.duration_us / 1000, 3),
        "createdAt": execution.created_at.isoformat(),
    }


def is_agent_name(name: str) -> bool:
    return len(name) <= 64 and NAME.fullmatch(name) is not None


# The agent an endpoint acts on, found with the caller in one statement (api/lookup.py).
# A name no agent can have (a NUL byte, which PostgreSQL refuses, any other odd character)
# is never sent to the database.
AGENT = Resource(Agent, field="name", url_kwarg="name", accepts=is_agent_name)


def _agent(request: ProjectApiRequest, name: str) -> Agent:
    if not is_agent_name(name):
        raise errors.not_found("agent_not_found", "No agent has that name in this project.")
    agent = request.resource
    if not isinstance(agent, Agent):
        raise errors.not_found("agent_not_found", f"No agent named '{name}' in this project.")
    return agent


def _object_field(body: dict[str, Any], field: str) -> dict[str, Any] | None:
    value = body.get(field)
    if value is not None and not isinstance(value, dict):
        raise errors.invalid_field_value(field, "must be a JSON object.")
    return value


def _payload(body: dict[str, Any]) -> dict[str, Any]:
    """{"prompt": str} or {"input": object}: what an invoke gives the agent."""
    if "prompt" in body and "input" in body:
        # One of them would be dropped without a word.
        raise errors.invalid_request("Send either 'prompt' or 'input', not both.")
    if "prompt" in body:
        if not isinstance(body["prompt"], str):
            raise errors.invalid_field_value("prompt", "must be a string.")
        return {"prompt": body["prompt"]}
    if "input" in body:
        if not isinstance(body["input"], dict):
            raise errors.invalid_field_value("input", "must be a JSON object.")
        return {"input": body["input"]}
    raise errors.missing_required_field("prompt")


def _key_id(request: ProjectApiRequest) -> int | None:
    return request.caller.api_key.pk if request.caller.api_key else None


@api_view(["POST"], permission=Permission.AGENTS, resource=AGENT)
def invoke(request: ProjectApiRequest, name: str) -> HttpResponse:
    require_agent_scope(request.caller, name, INVOKE)
    body = json_body(request)
    payload = _payload(body)
    context = _object_field(body, "context")
    agent = _agent(request, name)
    execution = agent_invoke(
        agent=agent, payload=payload, context=context, api_key_id=_key_id(request)
    )
    return ok({"output": execution.output, "execution": execution_summary(execution)})


@api_view(["POST"], surface=Surface.CLIENT, resource=AGENT)
def client_invoke(request: ClientApiRequest, name: str) -> HttpResponse:
    """The Client API's invoke: the agent sees the token's context and serverContext, which
    the customer's backend set when it minted the token. The browser cannot change them."""
    require_agent_scope(request.caller, name, INVOKE)
    body = json_body(request)
    if "context" in body:
        raise errors.invalid_field_value(
            "context", "is set by the client token; the Client API does not take it in the body."
        )
    payload = _payload(body)
    client_token = request.caller.client_token
    agent = _agent(request, name)
    execution = agent_invoke(
        agent=agent,
        payload=payload,
        context=client_token.context,
        server_context=client_token.server_context,
        api_key_id=_key_id(request),
    )
    return ok({"output": execution.output, "execution": execution_summary(execution)})


def execution_summary(run: Run) -> dict[str, Any]:
    return {
        "id": run.public_id,
        "status": run.status,
        "durationMs": round(run.duration_us / 1000, 3),
    }


@api_view(["POST"], permission=Permission.AGENTS, resource=AGENT)
def chat(request: ProjectApiRequest, name: str) -> HttpResponse:
    require_agent_scope(request.caller, name, CHAT)
    body = json_body(request)
    messages = body.get("messages")
    if messages is None:
        raise errors.missing_required_field("messages")
    if not isinstance(messages, list) or not messages:
        raise errors.invalid_field_value("messages", "must be a non-empty list.")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise errors.invalid_field_value(
                f"messages[{index}].role", "must be one of system, user, assistant."
            )
        if message["role"] not in CHAT_ROLES:
            raise errors.invalid_field_value(
                f"messages[{index}].role", "must be one of system, user, assistant."
            )
        if not isinstance(message.get("content"), str):
            raise errors.invalid_field_value(f"messages[{index}].content", "must be a string.")
    clean = [{"role": m["role"], "content": m["content"]} for m in messages]
    agent = _agent(request, name)
    execution = agent_chat(
        agent=agent,
        messages=clean,
        context=_object_field(body, "context"),
        api_key_id=_key_id(request),
    )
    return ok({"messages": execution.output, "execution": execution_summary(execution)})


@api_view(["GET"], permission=Permission.READ)
def agent_list(request: ProjectApiRequest) -> HttpResponse:
    after = cursor_param(request, accepts=is_agent_name)
    agents = Agent.objects.for_project(request.caller.project).within_scope(
        scoped_agent_names(request.caller)
    )
    page = keyset_page(
        agents,
        order=("name",),
        following=(after,) if after is not None else None,
        size=limit_param(request),
    )
    return ok(page_json(page, agent_json))


@api_view(["GET", "PUT"], resource=AGENT)
def agent_detail(request: ProjectApiRequest, name: str) -> HttpResponse:
    """GET needs `read`; PUT (deploy or update) needs `write`; either, an agent within the
    token's agent scope."""
    require_agent_in_scope(request.caller, name)
    if request.method in ("GET", "HEAD"):
        require_permission(request.caller, Permission.READ)
        return ok(agent_json(_agent(request, name)))
    require_permission(request.caller, Permission.WRITE)
    if not is_agent_name(name):
        raise errors.invalid_field_value("name", "must be 1 to 64 letters, digits, '-' or '_'.")
    if looks_like_a_token(name):
        # It would be shown in lists and logs: a key pasted here by mistake must not be,
        # nor the 36 characters after its prefix, which an agent scope refuses too.
        raise errors.invalid_field_value(
            "name", "looks like a Reminix token. Revoke that token if it was pasted here."
        )
    body = json_body(request, takes=("kind", "description", "config"))
    kind = body.get("kind", Agent.Kind.ECHO)
    if kind not in Agent.Kind.values:
        raise errors.invalid_field_value("kind", f"must be one of: {', '.join(Agent.Kind.values)}.")
    description = body.get("description", "")
    if not isinstance(description, str) or len(description) > 500:
        raise errors.invalid_field_value(
            "description", "must be a string of at most 500 characters."
        )
    if holds_token(description):
        # Shown to every member and in every agents list, as a key's name or notes are.
        raise errors.invalid_field_value(
            "description", "holds a Reminix token. Revoke that token if it was pasted here."
        )
    config = _object_field(body, "config") or {}
    size = len(json.dumps(config, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_CONFIG_BYTES:
        raise errors.invalid_field_value(
            "config", f"is {size:,} bytes of JSON; the limit is {MAX_CONFIG_BYTES:,}."
        )
    try:
        agent, created = agent_deploy(
            project=request.caller.project,
            name=name,
            kind=kind,
            description=description,
            config=config,
            by=request.caller.user,
            via=str(request.caller.personal_token or request.caller.api_key),
            ip=client_ip(request),
        )
    except TooManyAgents as error:
        # The contract has no code for a limit reached: the request cannot be done as
        # sent, and the message says what can.
        raise errors.invalid_request(str(error)) from None
    return ok(agent_json(agent), status=201 if created else 200)


@api_view(["GET"], permission=Permission.READ)
def execution_logs(request: ProjectApiRequest) -> HttpResponse:
    limit = limit_param(request)
    executions = Execution.objects.for_project(request.caller.project).within_scope(
        scoped_agent_names(request.caller)
    )
    following = None
    if (after := cursor_param(request, accepts=is_row_id)) is not None:
        following = (int(after),)
    if agent_name := request.GET.get("agent"):
        if not is_agent_name(agent_name):
            raise errors.invalid_field_value("agent", "must be an agent name.")
        executions = executions.of_agent(agent_name)

    def as_json(execution: Execution) -> dict[str, Any]:
        return {**execution_json(execution), "input": execution.input, "output": execution.output}

    page = keyset_page(executions, order=("-id",), following=following, size=limit)
    return ok(page_json(page, as_json))
