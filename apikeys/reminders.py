"""Reminders that a personal access token is about to expire: a dashboard banner and an
email 7 days ahead (sent by `manage.py send_token_expiry_reminders`, run daily from cron)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from apikeys.models import PersonalAccessToken
from core.mail import one_line

logger = logging.getLogger(__name__)

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
        try:
            sent += _remind(pat, now)
        except (OperationalError, InterfaceError):
            raise  # the database is gone: stop; the next run picks up where this stopped
        except Exception:
            # One token's reminder (its name, its owner's address, the mail server's answer
            # to it) must not stop everyone else's. Unclaimed, it is tried again next run.
            logger.exception("expiry reminder for personal access token %s not sent", pat.pk)
    return sent


def _remind(pat: PersonalAccessToken, now: datetime) -> int:
    with transaction.atomic():
        # Claim the token first, so two runs at once cannot both send; a failed send
        # rolls the claim back.
        claimed = PersonalAccessToken.objects.filter(
            pk=pat.pk, expiry_reminder_sent_at__isnull=True
        ).update(expiry_reminder_sent_at=now)
        if not claimed:
            return 0
        send_mail(
            subject=one_line(f"Your Reminix token “{pat.name}” expires soon"),
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
    return 1
