"""Agent scopes: which of a project's agents a token may use, and how (Reminix's client-token
permissions, `agents:invoke` and `agents:chat`).

A token with no scope (both lists empty, as every token made before scopes) reaches every
agent both ways. A client token's scope can only narrow the key's or PAT's that minted it;
on each call both are checked, so narrowing the parent later narrows its client tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

from core.token_shape import holds_token_rest

INVOKE = "agents:invoke"
CHAT = "agents:chat"
AGENT_ACTIONS = [INVOKE, CHAT]
MAX_SCOPED_AGENTS = 50
# An agent's name, as agents.models allows it (the token app cannot import agents).
AGENT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
TOKEN_SHAPED = re.compile(r"reminix_(?:sk|ct|pat)_", re.I)


class Scoped(Protocol):
    """What the checks here read of a token (every Token model has both lists): typed as a
    protocol because apikeys/models/common.py imports this module, not the other way round."""

    agent_names: list[str]
    agent_actions: list[str]


def parse_agent_names(text: str) -> tuple[list[str], list[str]]:
    """(the names, without repeats, in the order given; one message per bad entry).
    One per line or comma-separated; empty: every agent."""
    names: list[str] = []
    problems: list[str] = []
    for raw in re.split(r"[\n,]", text):
        name = raw.strip()
        if not name:
            continue
        if not AGENT_NAME.fullmatch(name):
            shown = name if name.isprintable() and len(name) <= 64 else "that entry"
            problems.append(f"“{shown}” is not an agent name (letters, digits, - and _).")
        elif TOKEN_SHAPED.search(name) or holds_token_rest(name):
            problems.append("That looks like a Reminix token, not an agent name: revoke it.")
        elif name not in names:
            names.append(name)
    if len(names) > MAX_SCOPED_AGENTS:
        problems.append(f"At most {MAX_SCOPED_AGENTS} agents; leave it empty for all of them.")
    return names, problems


def scope_refusal(token: Scoped, agent: str, action: str, *, shown: str = "") -> str | None:
    """Why `token` may not `action` the agent `agent` ("may use only …"), or None. `shown`:
    the agent's name as the reason repeats it (a path's may be of any length)."""
    if token.agent_names and agent not in token.agent_names:
        return f"may use only the agents {', '.join(token.agent_names)}, not '{shown or agent}'"
    if token.agent_actions and action not in token.agent_actions:
        return f"has only {', '.join(token.agent_actions)}, not {action}"
    return None


def widening(parent: Scoped, names: Iterable[str], actions: Iterable[str]) -> str | None:
    """What in (`names`, `actions`) the parent itself does not have, or None. Empty lists
    ask for the parent's own scope, which never widens it."""
    names, actions = list(names), list(actions)
    if parent.agent_names:
        beyond = [n for n in names if n not in parent.agent_names] if names else []
        if beyond:
            return f"the agents {', '.join(beyond)}"
    if parent.agent_actions:
        beyond = [a for a in actions if a not in parent.agent_actions] if actions else []
        if beyond:
            return ", ".join(beyond)
    return None


def describe(token: Scoped) -> str:
    """One line for pages: "" for no scope."""
    parts = []
    if token.agent_names:
        parts.append("agents " + ", ".join(token.agent_names))
    if token.agent_actions:
        parts.append(" and ".join(a.removeprefix("agents:") for a in token.agent_actions) + " only")
    return "; ".join(parts)
