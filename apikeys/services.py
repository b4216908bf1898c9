"""Writes for API keys. Each is one transaction with its audit event."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from accounts.audit import audit_record
from accounts.models import Project, User
from apikeys.models import ALL_PERMISSIONS, ApiKey
from apikeys.tokens import TokenKind, token_generate, token_hash, token_hint


@transaction.atomic
def api_key_create(
    *,
    project: Project,
    name: str,
    created_by: User | None,
    permissions: list[str] | None = None,
    expires_at: datetime | None = None,
    ip: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its secret. The secret is returned once and is not kept anywhere."""
    unknown = set(permissions or []) - set(ALL_PERMISSIONS)
    if unknown:
        raise ValueError(f"Unknown permissions: {', '.join(sorted(unknown))}")
    token = token_generate(TokenKind.API_KEY)
    api_key = ApiKey.objects.create(
        project=project,
        name=name.strip(),
        token_hash=token_hash(token),
        hint=token_hint(token, TokenKind.API_KEY),
        permissions=[p for p in ALL_PERMISSIONS if p in (permissions or ALL_PERMISSIONS)],
        created_by=created_by,
        expires_at=expires_at,
    )
    audit_record(
        action="api_key.created",
        actor=created_by,
        project=project,
        target=api_key,
        target_label=f"{api_key.name} ({api_key.hint})",
        ip=ip,
        metadata={
            "permissions": api_key.permissions,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return api_key, token


@transaction.atomic
def api_key_rename(*, api_key: ApiKey, name: str, by: User, ip: str | None = None) -> ApiKey:
    old = api_key.name
    api_key.name = name.strip()
    api_key.save(update_fields=["name"])
    audit_record(
        action="api_key.renamed",
        actor=by,
        project=api_key.project,
        target=api_key,
        target_label=f"{api_key.name} ({api_key.hint})",
        ip=ip,
        metadata={"from": old, "to": api_key.name},
    )
    return api_key


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, by: User | None, ip: str | None = None) -> bool:
    """Revoke a key. Committed before this returns, so the next call with it gets 401."""
    revoked = api_key.revoke(by=by)
    if revoked:
        audit_record(
            action="api_key.revoked",
            actor=by,
            project=api_key.project,
            target=api_key,
            target_label=f"{api_key.name} ({api_key.hint})",
            ip=ip,
        )
    return revoked
