"""Writing the audit trail: call audit_record() inside the transaction of the change."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models

from audit.actions import action_named
from audit.models import AuditEvent
from core.user_agent import current_user_agent

if TYPE_CHECKING:
    from accounts.models import Project, User


def audit_record(
    *,
    action: str,
    actor: User | None,
    project: Project | None = None,
    target: models.Model | None = None,
    target_label: str = "",
    ip: str | None = None,
    metadata: dict[str, Any] | None = None,
    actor_email: str = "",
) -> AuditEvent:
    """Append one event of a registered `action` (UnknownAuditAction otherwise).

    `target` is any model instance; its type and id are kept as text so that the event
    outlives the thing it describes. `actor_email` names an actor that is not a user of
    ours (an attempted sign-in with an unknown email)."""
    action_named(action)
    label = target_label or (str(target) if target is not None else "")
    return AuditEvent.objects.create(
        action=action,
        actor=actor,
        actor_email=_without_nul(actor.email if actor else actor_email)[:254],
        project=project,
        target_type=target._meta.model_name or "" if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=_without_nul(label)[:200],
        ip_address=ip or None,
        user_agent=current_user_agent(),
        metadata=_without_nul(metadata or {}),
    )


def _without_nul(value: Any) -> Any:
    """`value` with NUL characters taken out of its text, keys and nested values
    included: PostgreSQL refuses NUL in text and jsonb, and a client's text holding one
    would fail the event's write and the change it records (a 500), where SQLite kept it."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(item) for item in value]
    return value
