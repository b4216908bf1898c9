"""`manage.py clear_sessions`: what Django's `clearsessions` does (expired sessions leave
the session store), the Sessions page's records of sessions that no longer exist (and the
second steps counted in them), and the passkey challenges recorded as used that have
expired anyway (accounts/passkeys.py).

Run daily (the scheduler does). A record younger than an hour is kept even without its
session: at sign-in it is written a moment before the session itself is saved."""

from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.management.base import BaseCommand
from django.utils import timezone

from accounts.models import PendingSecondStep, SignedInSession
from accounts.passkeys import used_challenges_prune

GRACE = timedelta(hours=1)


class Command(BaseCommand):
    """The sessions' housekeeping described above: daily at 00:20 UTC under run_scheduler
    (README, Scheduled jobs)."""

    help = (
        "Remove expired sessions, the Sessions page's records of ended ones, and the "
        "passkey challenges recorded as used that have expired."
    )

    def handle(self, *args: object, **options: object) -> None:
        engine = import_module(settings.SESSION_ENGINE)
        engine.SessionStore.clear_expired()
        live = Session.objects.filter(expire_date__gt=timezone.now()).values("session_key")
        removed, _ = (
            SignedInSession.objects.filter(last_seen_at__lt=timezone.now() - GRACE)
            .exclude(session_key__in=live)
            .delete()
        )
        self.stdout.write(
            f"Removed {removed} record{'s' if removed != 1 else ''} of ended sessions."
        )
        PendingSecondStep.objects.filter(started_at__lt=timezone.now() - GRACE).exclude(
            session_key__in=live
        ).delete()
        challenges = used_challenges_prune()
        self.stdout.write(
            f"Removed {challenges} used passkey challenge{'s' if challenges != 1 else ''}."
        )
