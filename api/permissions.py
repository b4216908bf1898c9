"""What an endpoint requires of its caller.

Permission is the tokens' vocabulary (apikeys.models); endpoints name it through this
module, so that an app that only serves endpoints (agents) needs the API frame and never
the token app itself.
"""

from __future__ import annotations

from api import errors
from api.authentication import Caller
from apikeys.models import PatPermission, Permission
from apikeys.scopes import CHAT, INVOKE, Scoped, scope_refusal

__all__ = [
    "CHAT",
    "INVOKE",
    "KEYS",
    "Permission",
    "require_agent_in_scope",
    "require_agent_scope",
    "require_permission",
    "scoped_agent_names",
]

# Managing a project's API keys: only a personal access token given it (never full access).
KEYS = PatPermission.KEYS.value


def require_permission(caller: Caller, permission: str) -> None:
    if not caller.has_permission(permission):
        if permission == KEYS and caller.personal_token is None:
            raise errors.insufficient_permissions(
                "Managing API keys takes a personal access token with the 'keys' permission "
                "(and X-Project); an API key cannot manage keys."
            )
        what = "personal access token" if caller.personal_token else "API key"
        raise errors.insufficient_permissions(
            f"This {what} does not have the '{permission}' permission."
        )


def require_agent_scope(caller: Caller, agent: str, action: str) -> None:
    """The caller's token, and for a client token the key or PAT that minted it, may
    `action` (agents:invoke, agents:chat) the agent named `agent`: else 403, naming what
    is missing. Checked before the agent is looked for, so a refusal says nothing of
    whether it exists."""
    chain: list[tuple[str, Scoped | None]] = [
        ("client token", caller.client_token),
        ("API key", caller.api_key),
        ("personal access token", caller.personal_token),
    ]
    for noun, token in chain:
        if token is None or scope_refusal(token, agent, action) is None:
            continue
        # The name comes from the path, and is repeated as a 404 repeats a path: its start
        # (worked out for a refusal alone: the scan for tokens in it costs every call).
        shown = errors.echoed(agent)
        if reason := scope_refusal(token, agent, action, shown=shown):
            if caller.client_token is not None and noun != "client token":
                # The browser is told its token's limit, not the minting key's details.
                noun, reason = "client token", f"may not use '{shown}' this way ({action})"
            raise errors.insufficient_permissions(f"This {noun} {reason}.")


def scoped_agent_names(caller: Caller) -> list[str] | None:
    """The only agents the caller's token may touch at all (None: every agent). Lists and
    logs are narrowed to them; reading or deploying another agent is refused."""
    token = caller.personal_token or caller.api_key
    if token is None or not token.agent_names:
        return None
    return list(token.agent_names)


def require_agent_in_scope(caller: Caller, agent: str) -> None:
    """The agent is one the caller's token may touch (reading it, deploying it)."""
    names = scoped_agent_names(caller)
    if names is not None and agent not in names:
        noun = "personal access token" if caller.personal_token else "API key"
        raise errors.insufficient_permissions(
            f"This {noun} may use only the agents {', '.join(names)}, not '{errors.echoed(agent)}'."
        )
