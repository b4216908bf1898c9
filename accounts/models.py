"""Users, projects, memberships and audit events."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone


class UserManager(BaseUserManager["User"]):
    """Creates users whose username is their email address."""

    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: object) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in with an email address and a password."""

    email = models.EmailField("email address", unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name or self.email.split("@")[0]


class ProjectQuerySet(models.QuerySet["Project"]):
    def for_user(self, user: User) -> ProjectQuerySet:
        """The projects the user is a member of: every project page starts here."""
        return self.filter(memberships__user=user)


class Project(models.Model):
    """A customer's project: it owns agents and API keys, and has members."""

    name = models.CharField(max_length=80)
    slug = models.SlugField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def allowed_origins(self) -> list[str]:
        return [o.origin for o in self.origins.all()]


class AllowedOrigin(models.Model):
    """A browser origin ("https://app.example.com") allowed to call the Client API with the
    project's client tokens. A row each, so a CORS preflight is one indexed lookup."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="origins")
    origin = models.CharField(max_length=255, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "origin"], name="origin_unique_project")
        ]
        ordering = ["origin"]

    def __str__(self) -> str:
        return self.origin


class Membership(models.Model):
    """A user's role in a project."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        MEMBER = "member", "Member"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "project"], name="membership_unique_user")
        ]
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"

    @property
    def is_owner(self) -> bool:
        return self.role == self.Role.OWNER


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

    def update(self, **kwargs: object) -> int:
        raise AuditLogIsAppendOnly("Audit events cannot be updated.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditLogIsAppendOnly(
            "Audit events cannot be deleted; use AuditEvent.objects.purge_older_than() "
            "for retention."
        )

    def bulk_update(self, objs: object, fields: object, batch_size: int | None = None) -> int:
        raise AuditLogIsAppendOnly("Audit events cannot be updated.")

    def bulk_create(self, objs, *args, **kwargs):  # type: ignore[no-untyped-def,override]
        if kwargs.get("update_conflicts"):
            raise AuditLogIsAppendOnly("Audit events cannot be updated.")
        return super().bulk_create(objs, *args, **kwargs)

    def purge_older_than(self, cutoff: datetime) -> int:
        """The one deliberate way to remove events: every event (of this queryset) created
        before `cutoff`, for a retention job. Returns how many were removed."""
        doomed = self.filter(created_at__lt=cutoff)
        return doomed._raw_delete(doomed.db)


class AuditEvent(models.Model):
    """One security-relevant change: who did what to which thing, when and from where.

    Written in the same transaction as the change it records (see accounts/audit.py).
    Append-only from the application's side: saving an existing event, deleting one, and
    the queryset's update() and delete() raise AuditLogIsAppendOnly.
    """

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events"
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
    metadata = models.JSONField(default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["project", "-created_at"], name="audit_project_time"),
            # The user's own audit page.
            models.Index(fields=["actor", "-created_at"], name="audit_actor_time"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_email} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditLogIsAppendOnly("Audit events cannot be changed once written.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditLogIsAppendOnly("Audit events cannot be deleted.")
