"""`manage.py clear_sessions`: what Django's `clearsessions` does (expired sessions leave
the session store), the Sessions page's records of sessions that no longer exist (and the
second steps counted in them), and the passkey challenges recorded as used that have
expired anyway (accounts/passkeys.py).

Run daily (the scheduler does). A record younger than an hour is kept even without its
session: at sign-in it is written a moment before the session itself is saved.

Each kind goes a bounded batch at a time (core.batched_delete): one DELETE of everything
ended, as Django's clear_expired does, outlasts DB_STATEMENT_TIMEOUT once enough has piled
up, is cancelled having deleted nothing, and fails the same way every day after."""

from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone

from accounts.models import PendingSecondStep, SignedInSession
from accounts.passkeys import used_challenges_prune
from core.batched_delete import delete_in_batches
from core.commands import OperatorCommand

GRACE = timedelta(hours=1)


class Command(OperatorCommand):
    """The sessions' housekeeping described above: daily at 00:20 UTC under run_scheduler
    (README, Scheduled jobs)."""

    help = (
        "Remove expired sessions, the Sessions page's records of ended ones, and the "
        "passkey challenges recorded as used that have expired."
    )

    def handle(self, *args: object, **options: object) -> None:
        store = import_module(settings.SESSION_ENGINE).SessionStore
        if issubclass(store, DatabaseSessionStore):  # db and cached_db
            expired = store.get_model_class().objects.filter(expire_date__lt=timezone.now())
            delete_in_batches(expired, order_by="expire_date")
        else:
            store.clear_expired()  # files one by one; a cache or a cookie has nothing to do
        live = Session.objects.filter(expire_date__gt=timezone.now()).values("session_key")
        removed = delete_in_batches(
            SignedInSession.objects.filter(last_seen_at__lt=timezone.now() - GRACE).exclude(
                session_key__in=live
            ),
            order_by="pk",  # no index on last_seen_at: the oldest ids are the ended ones
        )
        self.stdout.write(
            f"Removed {removed} record{'s' if removed != 1 else ''} of ended sessions."
        )
        delete_in_batches(
            PendingSecondStep.objects.filter(started_at__lt=timezone.now() - GRACE).exclude(
                session_key__in=live
            ),
            order_by="pk",
        )
        challenges = used_challenges_prune()
        self.stdout.write(
            f"Removed {challenges} used passkey challenge{'s' if challenges != 1 else ''}."
        )
