"""Writes for email preferences, each with its audit event in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from accounts.models import Membership, User
from audit.log import audit_record
from notifications.models import NotificationPreference
from notifications.recipients import default_on

TOPICS = ("alert_emails", "expiry_emails")


@dataclass(frozen=True, slots=True)
class Choice:
    """What a person wants from one project: the two kinds of email, on or off."""

    alert_emails: bool
    expiry_emails: bool


def effective_choice(membership: Membership) -> Choice:
    """What the member gets now: their choice, or their role's default."""
    pref = getattr(membership, "notification_preference", None)
    values = {}
    for topic in TOPICS:
        chosen = getattr(pref, topic) if pref is not None else None
        values[topic] = default_on(membership.role) if chosen is None else chosen
    return Choice(**values)


@transaction.atomic
def notification_preferences_set(
    *, user: User, choices: dict[int, Choice], ip: str | None = None
) -> int:
    """Store `user`'s choices, by membership id (only their own memberships are touched;
    others are ignored). A choice equal to the role's default is stored as "the default",
    so it follows the role if it changes. One audit event per project whose emails
    changed, with [old, new]. Returns how many projects changed."""
    memberships = (
        # Lock the memberships only: PostgreSQL cannot lock the outer join's missing side.
        Membership.objects.select_for_update(of=("self",))
        .filter(user=user, pk__in=choices)
        .select_related("project", "notification_preference")
    )
    changed = 0
    for membership in memberships:
        old, new = effective_choice(membership), choices[membership.pk]
        if old == new:
            continue
        stored = {
            topic: None
            if getattr(new, topic) == default_on(membership.role)
            else getattr(new, topic)
            for topic in TOPICS
        }
        NotificationPreference.objects.update_or_create(
            membership=membership, defaults={**stored, "updated_at": timezone.now()}
        )
        audit_record(
            action="notifications.preferences_changed",
            actor=user,
            project=membership.project,
            target=membership,
            target_label=f"{user.email} in {membership.project.name}"[:200],
            ip=ip,
            metadata={
                topic: [getattr(old, topic), getattr(new, topic)]
                for topic in TOPICS
                if getattr(old, topic) != getattr(new, topic)
            },
        )
        changed += 1
    return changed
