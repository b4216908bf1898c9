"""Writes for alerts. Each is one transaction with its audit event."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from alerts.models import Flag
from audit.log import audit_record


@transaction.atomic
def flag_acknowledge(*, flag: Flag, by: User, ip: str | None = None) -> bool:
    """Mark `flag` as looked at by `by`. True if this call acknowledged it; False if
    someone already had (who and when are kept from the first). A new occurrence of the
    same finding afterwards opens a new flag."""
    changed = Flag.objects.filter(pk=flag.pk, acknowledged_at__isnull=True).update(
        acknowledged_at=timezone.now(), acknowledged_by=by
    )
    if changed:
        flag.refresh_from_db(fields=["acknowledged_at", "acknowledged_by"])
        audit_record(
            action="flag.acknowledged",
            actor=by,
            project=flag.project,
            target=flag,
            target_label=flag.summary[:200],
            ip=ip,
            metadata={"kind": flag.kind, "severity": flag.severity},
        )
    return bool(changed)
