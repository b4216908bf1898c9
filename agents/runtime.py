"""Running an agent. The built-in `echo` kind answers with what it was given, so every
path of the key system can be exercised end to end without an outside model.

A run is answered at once; its Execution row is written after the answer, like the usage
log (core/write_behind.py), so /v1/execution-logs may show it up to a second later.

The row keeps each part of what the agent was given (`prompt`, `input`, `messages`,
`context`, `serverContext`) and what it answered whole up to KEPT_JSON_CHARS characters of
JSON, and only the start of a longer one (see `kept`). The caller's answer is never cut.
Without the bound, one call with a prompt that fills the API's 2.5 MB body, its
characters escaped, put some 15 MB on the stream, and a batch of them could run the
ingest past its statement timeout for every project.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError
from django.utils import timezone

from agents.models import Agent, Execution
from core import write_behind
from core.bulk_insert import insert_new
from usage.writer import api_key_projects

KEPT_JSON_CHARS = 16_384
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def kept(value: Any) -> Any:
    """`value` as the execution log keeps it: whole when its JSON is at most
    KEPT_JSON_CHARS long; else {"truncated": true, "jsonChars": its length, "start": the
    first half of that many characters of it}."""
    if not value or (isinstance(value, str) and len(value) * 12 + 2 <= KEPT_JSON_CHARS):
        # Short enough however its characters are escaped (one outside the BMP is two
        # \uXXXX escapes): not encoded to check.
        return value
    text = _ENCODER.encode(value)  # ASCII: escaped again, it at most doubles
    if len(text) <= KEPT_JSON_CHARS:
        return value
    return {"truncated": True, "jsonChars": len(text), "start": text[: KEPT_JSON_CHARS // 2]}


@dataclass(frozen=True, slots=True)
class Run:
    """One run of an agent, as its caller is answered."""

    public_id: str
    status: str
    duration_us: int
    output: Any


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
) -> Run:
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
) -> Run:
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
) -> Run:
    """The run, answered now; its Execution row is deferred (see the module)."""
    run = Run(
        public_id="exec_" + secrets.token_hex(12),
        status=Execution.Status.SUCCESS.value,
        duration_us=int((time.perf_counter() - started) * 1_000_000),
        output=output,
    )
    write_behind.defer(
        "execution",
        {
            "public_id": run.public_id,
            "project_id": agent.project_id,
            "agent_id": agent.pk,
            "agent_name": agent.name,
            "type": type_,
            "status": run.status,
            "duration_us": run.duration_us,
            "input": {name: kept(part) for name, part in given.items()},
            "output": kept(output),
            "api_key_id": api_key_id,
            "created_at": timezone.now().isoformat(),
        },
    )
    return run


_ROW_FIELDS = (
    "public_id",
    "project",
    "agent",
    "agent_name",
    "type",
    "status",
    "duration_us",
    "input",
    "output",
    "api_key_id",
    "created_at",
)


def _moment(text: str) -> datetime:
    """A record's time, in UTC. ValueError (the record is dropped) for one without a time
    zone, or one that is no moment Python can hold once in UTC (9999-12-31T23:59-14:00):
    PostgreSQL keeps it (year 10000), and each read of the page holding it failed."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text[:40]!r} names no time zone")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text[:40]!r} is out of range in UTC") from None


# Execution.duration_us's bound on PostgreSQL (a PositiveIntegerField): some 36 minutes.
_MOST_MICROSECONDS = 2**31 - 1


def _duration(value: Any) -> int:
    """A record's duration, in whole microseconds as the API measures it. ValueError (the
    record is dropped) for anything else: SQLite keeps what it is given, and the execution
    log's durationMs of "slow" was a 500 on every page holding it, and of Infinity put
    `Infinity` in its JSON, which no strict reader takes."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("an execution's duration is no whole number")
    if not 0 <= value <= _MOST_MICROSECONDS:
        raise ValueError("an execution's duration is out of range")
    return value


def executions_check_from_stream(payloads: list[dict[str, Any]]) -> None:
    """ValueError (the batch is written in halves, down to the entry, which is dropped and
    counted) if an execution read from the stream names an agent or a key of another
    project than its own. The API takes an execution's project from its caller, so only
    an entry made by hand on the stream does; written, it was the named project's
    execution tied to the other project's agent. An agent or key not found is left alone
    (an agent deleted since: see executions_write). Two small reads a batch, by primary
    key; a worker's own buffer holds only executions it ran, and is not read for them."""
    agent_ids = {p["agent_id"] for p in payloads if p.get("agent_id") is not None}
    key_ids = {p["api_key_id"] for p in payloads if p.get("api_key_id") is not None}
    agents = dict(Agent.objects.filter(pk__in=agent_ids).order_by().values_list("pk", "project_id"))
    keys = api_key_projects(key_ids)
    for p in payloads:
        agent_id, key_id = p.get("agent_id"), p.get("api_key_id")
        if agent_id in agents and agents[agent_id] != p.get("project_id"):
            raise ValueError("an execution names an agent of another project")
        if key_id in keys and keys[key_id] != p.get("project_id"):
            raise ValueError("an execution names a key of another project")


def executions_write(payloads: list[dict[str, Any]]) -> None:
    """The write-behind sink of the "execution" channel. A row already written (a batch
    retried after its commit) is skipped by its unique public id.

    An agent deleted since its call was answered leaves its execution without an agent,
    as Execution.agent's SET_NULL does for one deleted later; the row is not dropped for
    naming an agent that is gone. Looked for only once the insert is refused, so a batch
    costs one statement as before. (Run outside a transaction, as the write-behind runs
    it: the refused insert was a transaction of its own, and nothing else is undone.)"""
    rows = [
        (
            p["public_id"],
            p["project_id"],
            p["agent_id"],
            p["agent_name"],
            p["type"],
            p["status"],
            _duration(p["duration_us"]),
            p["input"],
            p["output"],
            p["api_key_id"],
            _moment(p["created_at"]),
        )
        for p in payloads
    ]
    try:
        insert_new(Execution, _ROW_FIELDS, rows, conflict=("public_id",), returning="id")
    except IntegrityError:
        named = {row[2] for row in rows if row[2] is not None}
        present = set(Agent.objects.filter(pk__in=named).values_list("pk", flat=True))
        if named <= present:
            raise  # not an agent gone: the write-behind writes the batch in halves
        rows = [(*row[:2], row[2] if row[2] in present else None, *row[3:]) for row in rows]
        insert_new(Execution, _ROW_FIELDS, rows, conflict=("public_id",), returning="id")
