"""A member's choice of the emails a project sends them.

Without a choice (no row, or NULL) a member gets what their role gets by default: owners
the high-severity alert emails and the API key expiry reminders, other members neither.
A choice is kept only where it differs from that default, so an owner who never chose
and a member made owner later both get the owners' emails."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from accounts.models import Membership


class NotificationPreference(models.Model):
    """One member's choices in one project. Goes with the membership: leaving a project
    ends them, and joining again starts from the role's defaults."""

    membership = models.OneToOneField(
        Membership,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="notification_preference",
    )
    # None: the role's default (on for owners, off for other members).
    alert_emails = models.BooleanField(null=True, blank=True)
    expiry_emails = models.BooleanField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Email preferences of membership {self.membership_id}"
