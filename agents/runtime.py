"""Running an agent. The built-in `echo` kind answers with what it was given, so every
path of the key system can be exercised end to end without an outside model."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from django.utils import timezone

from agents.models import Agent, Execution
from core import write_behind


def _echo_invoke(payload: dict[str, Any]) -> Any:
    return payload["prompt"] if "prompt" in payload else payload["input"]


def _echo_chat(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    return [*messages, {"role": "assistant", "content": last_user}]


def agent_invoke(
    *,
    agent: Agent,
    payload: dict[str, Any],
    context: dict[str, Any] | None = None,
    server_context: dict[str, Any] | None = None,
    api_key_id: int | None = None,
) -> Execution:
    """Run `agent` on `payload` ({"prompt": …} or {"input": …}) and record the execution.
    The agent sees both contexts; the execution log keeps them for the project's servers."""
    started = time.perf_counter()
    output = _echo_invoke(payload)
    return _record(
        agent,
        Execution.Type.INVOKE,
        {**payload, "context": context or {}, "serverContext": server_context or {}},
        output,
        started,
        api_key_id,
    )


def agent_chat(
    *,
    agent: Agent,
    messages: list[dict[str, str]],
    context: dict[str, Any] | None = None,
    api_key_id: int | None = None,
) -> Execution:
    started = time.perf_counter()
    output = _echo_chat(messages)
    return _record(
        agent,
        Execution.Type.CHAT,
        {"messages": messages, "context": context or {}},
        output,
        started,
        api_key_id,
    )


def _record(
    agent: Agent,
    type_: str,
    given: dict[str, Any],
    output: Any,
    started: float,
    api_key_id: int | None,
) -> Execution:
    """The execution, with its id; its row is written after the answer, like the usage
    log (core/write_behind.py), so /v1/execution-logs may show it up to a second later."""
    execution = Execution(
        project_id=agent.project_id,
        agent=agent,
        agent_name=agent.name,
        type=type_,
        status=Execution.Status.SUCCESS,
        duration_us=int((time.perf_counter() - started) * 1_000_000),
        input=given,
        output=output,
        api_key_id=api_key_id,
        created_at=timezone.now(),
    )
    write_behind.defer("execution", _payload(execution))
    return execution


_FIELDS = (
    "public_id",
    "project_id",
    "agent_id",
    "agent_name",
    "type",
    "status",
    "duration_us",
    "input",
    "output",
    "api_key_id",
)


def _payload(execution: Execution) -> dict[str, Any]:
    return {
        **{name: getattr(execution, name) for name in _FIELDS},
        "created_at": execution.created_at.isoformat(),
    }


def executions_write(payloads: list[dict[str, Any]]) -> None:
    """The write-behind sink of the "execution" channel. A row already written (a batch
    retried after its commit) is skipped by its unique public id."""
    Execution.objects.bulk_create(
        [
            Execution(**{**p, "created_at": datetime.fromisoformat(p["created_at"])})
            for p in payloads
        ],
        ignore_conflicts=True,
    )
