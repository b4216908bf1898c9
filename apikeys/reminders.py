"""Reminders that a personal access token is about to expire: a dashboard banner and an
email 7 days ahead (sent by `manage.py send_token_expiry_reminders`, run daily from cron)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from apikeys.models import PersonalAccessToken

REMIND_BEFORE = timedelta(days=7)


def personal_tokens_expiring_soon(user: User) -> QuerySet[PersonalAccessToken]:
    now = timezone.now()
    return (
        PersonalAccessToken.objects.for_user(user)
        .active()
        .filter(expires_at__lte=now + REMIND_BEFORE)
        .order_by("expires_at")
    )


def send_expiry_reminders() -> int:
    """Email each owner of a token that expires within 7 days, once per token."""
    now = timezone.now()
    due = (
        PersonalAccessToken.objects.active()
        .filter(expires_at__lte=now + REMIND_BEFORE, expiry_reminder_sent_at__isnull=True)
        .select_related("user")
    )
    sent = 0
    for pat in due:
        with transaction.atomic():
            # Claim the token first, so two runs at once cannot both send.
            claimed = PersonalAccessToken.objects.filter(
                pk=pat.pk, expiry_reminder_sent_at__isnull=True
            ).update(expiry_reminder_sent_at=now)
            if not claimed:
                continue
            send_mail(
                subject=f"Your Reminix token “{pat.name}” expires soon",
                message=(
                    f"Your personal access token “{pat.name}” ({pat.hint}) expires on "
                    f"{pat.expires_at:%-d %B %Y at %H:%M} UTC.\n\n"
                    "If you still need it, create a new token under Personal access tokens "
                    "and replace the old one where it is used. If not, nothing needs doing: "
                    "it stops working on its own.\n"
                ),
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=[pat.user.email],
            )
        sent += 1
    return sent
