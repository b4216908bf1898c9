"""What the writes of every kind of token share: the member check of a person's change,
token_revoke (the one way every revocation goes), a new token's audit metadata, and the
refusals of a roll or a regeneration."""

from __future__ import annotations

from typing import Any

from accounts.models import Project, User
from accounts.services import member_hold
from apikeys.models import ApiKey, PersonalAccessToken, Token
from audit.log import audit_record
from core.invalidation import changed


def _by_a_member(project: Project, by: User | None) -> None:
    """A change a person makes to the project's credentials: they are a member until it
    commits (member_hold; NoLongerAMember). None: no person (a script, a report)."""
    if by is not None:
        member_hold(project=project, user=by)


def token_revoke(
    token: Token,
    *,
    action: str,
    by: User | None,
    project: Project | None,
    ip: str | None,
    metadata: dict[str, Any] | None = None,
) -> bool:
    """Revoke `token` of any kind now and record it, once: revoking it again records
    nothing. Committed with the caller's transaction, so the next call with it is refused
    on every worker. The one way every revocation goes (pages, API, reported leaks)."""
    revoked = token.revoke(by=by)
    if revoked:
        changed(token.change_identity)
        audit_record(
            action=action, actor=by, project=project, target=token, ip=ip, metadata=metadata
        )
    return revoked


def _lifetime(token: ApiKey | PersonalAccessToken) -> dict[str, Any]:
    """What a new key or PAT may do and until when, for its audit event."""
    expires_at = token.expires_at
    return {
        "permissions": token.permissions,
        "expires_at": expires_at.isoformat() if expires_at else None,
        **_scope(token),
    }


def _scope(token: Token) -> dict[str, Any]:
    """Its agent scope, for audit events: nothing when it has none."""
    scope: dict[str, Any] = {}
    if token.agent_names:
        scope["agents"] = token.agent_names
    if token.agent_actions:
        scope["agent_actions"] = token.agent_actions
    return scope


class CannotRoll(Exception):
    """The key is revoked or expired: there is nothing to roll (make a new key)."""


class RolledMeanwhile(Exception):
    """The secret a form meant to replace was replaced already, by a request that went
    first: a double click, or the same form sent from two tabs. Its one new secret was
    shown there; this request changes nothing. `hint` is the secret's now."""

    def __init__(self, hint: str) -> None:
        super().__init__(hint)
        self.hint = hint
