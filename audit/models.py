"""The audit trail's one table. It kept its name (accounts_auditevent) when it moved here."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.db.models import F
from django.db.models.functions import Upper
from django.utils import timezone

from core.json_type import json_type_check

if TYPE_CHECKING:
    from accounts.models import Project, User


class AuditLogIsAppendOnly(Exception):
    """Raised by any attempt of the application to change or remove an audit event."""


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    """Reads of the audit trail. Writes other than inserts are refused (see AuditEvent).

    Deleting a project or a user still works: Django's deletion collector reaches related
    rows through the plain base manager (`_base_manager`), not through this queryset, so a
    project's events go with it and a deleted user's events keep their `actor_email`.
    """

    def for_project(self, project: Project) -> AuditEventQuerySet:
        return self.filter(project=project)

    def for_user(self, user: User) -> AuditEventQuerySet:
        """What a user did, and the sign-in attempts on their account (recorded with the
        account as actor, see accounts/signals.py)."""
        return self.filter(actor=user)

    def update(self, **kwargs: Any) -> int:
        raise AuditLogIsAppendOnly("Audit events cannot be updated.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditLogIsAppendOnly(
            "Audit events cannot be deleted; use AuditEvent.objects.purge_older_than() "
            "for retention."
        )

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        raise AuditLogIsAppendOnly("Audit events cannot be updated.")

    def bulk_create(
        self,
        objs: Iterable[Any],
        batch_size: int | None = None,
        ignore_conflicts: bool = False,
        update_conflicts: bool = False,
        update_fields: Collection[str] | None = None,
        unique_fields: Collection[str] | None = None,
    ) -> list[Any]:
        if update_conflicts:
            raise AuditLogIsAppendOnly("Audit events cannot be updated.")
        return super().bulk_create(objs, batch_size=batch_size, ignore_conflicts=ignore_conflicts)

    def purge_older_than(self, cutoff: datetime) -> int:
        """The one deliberate way to remove events: every event (of this queryset) created
        before `cutoff`, for a retention job. Returns how many were removed."""
        doomed = self.filter(created_at__lt=cutoff)
        return doomed._raw_delete(doomed.db)


class AuditEvent(models.Model):
    """One security-relevant change: who did what to which thing, when and from where.

    Written in the same transaction as the change it records (audit.log.audit_record).
    Append-only from the application's side: saving an existing event, deleting one, and
    the queryset's update() and delete() raise AuditLogIsAppendOnly.
    """

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    project = models.ForeignKey(
        "accounts.Project",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="audit_events",
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_events",
    )
    # Kept beside the foreign key so the record still says who it was after a user is deleted.
    actor_email = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=32, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    # The request's, as kept by core.user_agent (cut, escaped, tokens removed); "" outside one.
    user_agent = models.CharField(max_length=255, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        db_table = "accounts_auditevent"
        ordering = ["-created_at", "-id"]
        constraints = [
            # audit_record() takes a dict only; the pages read it as one (audit/migrations/0006).
            json_type_check(field="metadata", json_type="object", name="audit_metadata_is_object")
        ]
        indexes = [
            models.Index(fields=["project", "-created_at"], name="audit_project_time"),
            # The user's own audit page.
            models.Index(fields=["actor", "-created_at"], name="audit_actor_time"),
            # A project's page filtered by one actor's whole address (compared in any
            # case) or by one address acted from, a page at a time (audit/migrations/0003).
            models.Index(
                F("project"),
                Upper("actor_email"),
                F("created_at").desc(),
                F("id").desc(),
                name="audit_project_actor_time",
            ),
            models.Index(
                fields=["project", "ip_address", "-created_at", "-id"],
                name="audit_project_ip_time",
            ),
            # Everything that happened to one key or token: its page links it
            # (audit/migrations/0004).
            models.Index(
                fields=["project", "target_type", "target_id", "-created_at", "-id"],
                name="audit_project_target_time",
            ),
            # A person's sign-ins alone: the front page's last sign-ins, and a sign-in's
            # "first time?" and "from a new network?" (audit/migrations/0002).
            models.Index(
                fields=["actor", "-created_at"],
                condition=models.Q(action="user.signed_in"),
                name="audit_sign_ins",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_email} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditLogIsAppendOnly("Audit events cannot be changed once written.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditLogIsAppendOnly("Audit events cannot be deleted.")
