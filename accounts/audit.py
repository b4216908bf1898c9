"""Writing the audit trail. Call inside the transaction of the change being recorded."""

from __future__ import annotations

from typing import Any

from accounts.models import AuditEvent, Project, User


def audit_record(
    *,
    action: str,
    actor: User | None,
    project: Project | None = None,
    target: Any = None,
    target_label: str = "",
    ip: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. `target` is any model instance; its type and id are kept as text
    so that the event outlives the thing it describes."""
    return AuditEvent.objects.create(
        action=action,
        actor=actor,
        actor_email=actor.email if actor else "",
        project=project,
        target_type=target._meta.model_name if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=target_label or (str(target) if target is not None else ""),
        ip_address=ip or None,
        metadata=metadata or {},
    )
