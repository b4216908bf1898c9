"""Reminders that a token is about to expire, sent by `manage.py send_token_expiry_reminders`
(hourly, by run_scheduler): a personal access token's person is emailed 7 days ahead (and
sees a banner); an API key's project owners (less those who turned these emails off, and
members who turned them on: notifications/) are emailed 7 days and 1 day ahead, once
each, each in a message of their own.

A reminder that cannot be sent (its data, the mail server's answer, its row held by
another transaction past the lock timeout, a statement past the statement timeout) is
logged, counted as skipped and left unclaimed, so the next run tries it again; the others
still go. Only the database itself going away stops the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from operator import itemgetter

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from apikeys.models import ApiKey, PersonalAccessToken
from core.db_errors import run_must_stop
from core.mail import one_line
from notifications.recipients import (
    MailRun,
    NobodyReached,
    expiry_email_recipients,
    send_to_each,
)

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


@dataclass
class ReminderResult:
    """What one run of send_expiry_reminders() did, printed by its command."""

    sent: int = 0
    # Reminders that could not be sent: logged, left unclaimed, tried again next run.
    skipped: int = 0


# Its place, its tenant (whose: a person's for a PAT, a project's for a key), the send.
type _Due = tuple[tuple[int, int], tuple[int, int], Callable[[], int], str]


def send_expiry_reminders() -> ReminderResult:
    """Every reminder that is due, each once: how many went out, and how many wait.

    One MailRun for them all (notifications/recipients.py): an address the mail server
    did not answer for is not tried again in the run, the sends take
    MAIL_RUN_BUDGET_SECONDS at most (the rest wait, unclaimed, for the next run), each
    person (for their tokens) and project (for its keys) takes a reminder in turn, and a
    run starts after the last reminder the previous one tried, oldest first, and round."""
    now = timezone.now()
    run = MailRun("expiry-reminders")
    due: list[_Due] = [
        (
            (0, pat.pk),
            (0, pat.user_id),
            partial(_remind, pat, now, run),
            f"personal access token {pat.pk}",
        )
        for pat in _personal_tokens_due(now)
    ]
    due += [
        ((1, key.pk), (1, key.project_id), partial(_remind_key, key, now, run), f"API key {key.pk}")
        for key in _api_keys_due(now)
    ]
    result = _each(run.in_turn(due, place=itemgetter(0), tenant=itemgetter(1)))
    result.skipped += run.owed
    run.finish()
    return result


def _each(due: Iterable[_Due]) -> ReminderResult:
    """Each reminder that is due; how many mails went out and how many wait."""
    result = ReminderResult()
    for _, _, remind, what in due:
        try:
            result.sent += remind()
        except NobodyReached:
            # The mail server's doing, each recipient's failure logged where it happened:
            # one line, not a traceback every hour until the token expires.
            logger.info("expiry reminder for %s reached nobody; tried again next run", what)
            result.skipped += 1
        except Exception as error:
            if run_must_stop(error):
                raise  # the database is gone (or its SQL cannot run): stop; the next run retries
            # One token's reminder (its name, its owners' addresses, the mail server's
            # answer, a lock on its row that outlasts lock_timeout) must not stop everyone
            # else's: the others after it, in the same order every run. Unclaimed, it is
            # tried again next run.
            logger.exception("expiry reminder for %s not sent", what)
            result.skipped += 1
    return result


KEY_REMIND_LAST = timedelta(days=1)
# What a reminder reads of each due token, and no more: a column it never looks at (a
# token's scopes, its allowed networks) that holds JSON Python cannot read back (put there
# by hand, a restore) raised while the due rows were read, outside any one token's
# isolation, and stopped every tenant's reminders, every run.
_KEY_READ = ("name", "hint", "expires_at", "project", "project__name", "project__slug")
_PAT_READ = ("name", "hint", "expires_at", "user", "user__email")


def _api_keys_due(now: datetime) -> QuerySet[ApiKey]:
    """The keys whose owners are to be emailed: those that expire within 7 days, and again
    within a day. A key first seen inside its last day gets only the second."""
    return (
        ApiKey.objects.active()
        .filter(expires_at__lte=now + REMIND_BEFORE)
        .filter(
            Q(expiry_week_reminder_sent_at__isnull=True)
            | Q(expires_at__lte=now + KEY_REMIND_LAST, expiry_day_reminder_sent_at__isnull=True)
        )
        .select_related("project")
        .only(*_KEY_READ)
    )


def _remind_key(key: ApiKey, now: datetime, run: MailRun) -> int:
    assert key.expires_at is not None
    last_day = key.expires_at <= now + KEY_REMIND_LAST
    recipients = expiry_email_recipients(key.project_id)
    if not recipients:
        return 0  # nobody to tell yet: unclaimed, tried again next run
    # Still working when claimed (its own columns only: see _remind): a deletion of its
    # project that committed since the run read it (the key revoked, the owners read
    # above its former members) ends it here.
    claim = ApiKey.objects.active().filter(pk=key.pk)
    if last_day:
        # The day's reminder covers the week's, if that was never sent.
        claimed = claim.filter(expiry_day_reminder_sent_at__isnull=True).update(
            expiry_day_reminder_sent_at=now,
            expiry_week_reminder_sent_at=Coalesce(F("expiry_week_reminder_sent_at"), now),
        )
    else:
        claimed = claim.filter(expiry_week_reminder_sent_at__isnull=True).update(
            expiry_week_reminder_sent_at=now
        )
    if not claimed:
        return 0

    def give_back() -> None:
        claim.filter(expiry_day_reminder_sent_at=now).update(expiry_day_reminder_sent_at=None)
        claim.filter(expiry_week_reminder_sent_at=now).update(expiry_week_reminder_sent_at=None)

    when = "tomorrow" if last_day else "within a week"
    preferences = settings.DASHBOARD_URL.rstrip("/") + reverse("notifications:preferences")
    # One message each; if it reaches nobody, NobodyReached gives the claim back.
    _after_claim(
        lambda: send_to_each(
            recipients,
            lambda to: send_mail(
                subject=one_line(
                    f"[Reminix] API key “{key.name}” of {key.project.name} expires {when}"
                ),
                message=(
                    f"The API key “{one_line(key.name)}” ({key.hint}) of the project "
                    f"{one_line(key.project.name)} expires on "
                    f"{key.expires_at:%-d %b %Y, %H:%M} UTC. Calls with it after that get "
                    "401 expired_api_key.\n\n"
                    "If it is still needed, create a new key (with a later expiry) and put it "
                    "where this one is used before it expires. Rolling gives a new secret but "
                    "keeps the key's expiry:\n"
                    f"{settings.DASHBOARD_URL}/projects/{key.project.slug}/settings/api-keys/\n\n"
                    f"Choose which emails you get from each project: {preferences}\n"
                ),
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=to,
            ),
            run=run,
        ),
        give_back=give_back,
    )
    return 1


def _after_claim(send: Callable[[], object], *, give_back: Callable[[], object]) -> None:
    """Send, the claim already committed; if the send fails, give the claim back so that
    the next run tries again. The claim commits first because a transaction open while a
    mail server answers (seconds per recipient) would hold the token's row all that time:
    an owner revoking or rolling it would wait, and past the lock timeout get an error. The
    price: a process killed between the claim and the send loses that one reminder."""
    try:
        send()
    except Exception:
        give_back()
        raise


def _personal_tokens_due(now: datetime) -> QuerySet[PersonalAccessToken]:
    """The PATs whose owners are to be emailed: those that expire within 7 days, once."""
    return (
        PersonalAccessToken.objects.active()
        .filter(expires_at__lte=now + REMIND_BEFORE, expiry_reminder_sent_at__isnull=True)
        # A deleted account (inactive, its address deleted-<id>@deleted.invalid) is told
        # nothing, even of a token a request under way at its deletion left working.
        .filter(user__is_active=True)
        .select_related("user")
        .only(*_PAT_READ)
    )


def _remind(pat: PersonalAccessToken, now: datetime, run: MailRun) -> int:
    # Claimed first, so two runs at once cannot both send; committed before the mail goes
    # (see _after_claim). Still working when claimed: an account deleted since the run
    # read the token (its address as it was then) revoked it, and is not written to. Only
    # the token's own columns: a condition on a joined table would put the whole claim in
    # a subquery, which PostgreSQL does not check again after waiting for the row.
    claim = PersonalAccessToken.objects.active().filter(pk=pat.pk)
    if not claim.filter(expiry_reminder_sent_at__isnull=True).update(expiry_reminder_sent_at=now):
        return 0
    tokens_page = settings.DASHBOARD_URL.rstrip("/") + reverse("apikeys:personal_token_list")
    _after_claim(
        lambda: send_to_each(
            [pat.user.email],
            lambda to: send_mail(
                subject=one_line(f"[Reminix] Your token “{pat.name}” expires soon"),
                message=(
                    f"Your personal access token “{one_line(pat.name)}” ({pat.hint}) expires "
                    f"on {pat.expires_at:%-d %b %Y, %H:%M} UTC.\n\n"
                    "If you still need it, create a new token and replace the old one where "
                    "it is used. If not, nothing needs doing: it stops working on its own.\n"
                    f"{tokens_page}\n"
                ),
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=to,
            ),
            run=run,
        ),
        give_back=lambda: claim.filter(expiry_reminder_sent_at=now).update(
            expiry_reminder_sent_at=None
        ),
    )
    return 1
