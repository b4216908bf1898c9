"""Telling people: every open high-severity flag not yet emailed goes to its project's owners
(and the members who asked; notifications/), one email each, at most once per key an hour."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Q
from django.urls import reverse

from alerts.detection.flags import SUMMARY_LENGTH
from alerts.detection.result import DetectionResult, _isolated
from alerts.links import evidence_note, evidence_url
from alerts.models import Flag
from core.db_errors import run_must_stop
from core.mail import one_line
from notifications.recipients import (
    RETRY_WAITS,
    MailRun,
    NobodyReached,
    alert_email_recipients,
    send_to_each,
)

logger = logging.getLogger(__name__)


EMAIL_EVERY = timedelta(hours=1)
# A flag not emailed within this long (no owner could be reached) is not emailed late.
EMAIL_WITHIN = timedelta(days=1)
# An email that reached nobody is tried again after these waits (notifications.recipients)
# and given up after the last (EMAIL_ATTEMPTS tries in all, over some 19 h 20 min, inside
# EMAIL_WITHIN), logged once; the alert stays open on the Alerts page. Tried every run, it
# logged a warning each run for the day above (a run a minute: 1,440), and took its share
# of every run's mail budget from the other projects' emails.
EMAIL_RETRY_WAITS = RETRY_WAITS
EMAIL_ATTEMPTS = len(EMAIL_RETRY_WAITS) + 1


def email_pending_flags(now: datetime, result: DetectionResult) -> None:
    """Email the owners (and members who asked) about every open high-severity flag not
    emailed yet (raised by this run or by one that failed before its emails), each in
    isolation: a project whose mail cannot be sent does not keep the others' from going.
    Their sends take MAIL_RUN_BUDGET_SECONDS at most (the rest wait for the next run),
    a project at a time in turn, from where the last run stopped (MailRun)."""
    pending = (
        Flag.objects.filter(
            severity=Flag.Severity.HIGH,
            emailed_at__isnull=True,
            acknowledged_at__isnull=True,
            created_at__gte=now - EMAIL_WITHIN,
            email_attempts__lt=EMAIL_ATTEMPTS,
        )
        .filter(Q(email_retry_at__isnull=True) | Q(email_retry_at__lte=now))
        .select_related("project")
        .order_by("id")
    )
    run = MailRun("alert-emails")
    for flag in run.in_turn(pending, place=_place, tenant=_tenant):
        recipients = _isolated(
            f"claiming the email for flag {flag.pk}", partial(_claim_email, flag, now), result
        )
        if recipients and _email_owners(flag, recipients, now, result, run):
            result.emails += 1
    run.finish()


def _place(flag: Flag) -> tuple[int]:
    return (flag.pk,)


def _tenant(flag: Flag) -> tuple[int]:
    return (flag.project_id,)


def _claim_email(flag: Flag, now: datetime) -> list[str]:
    """Claim the email about a new high-severity flag (emailed_at), so that two runs never
    both send it; whom to send it to (none: nothing to send now). One email per key (or
    client token) per hour at most, however many flags it raises: a flag raised within the
    hour of its key's last email is held back, unclaimed, and a run after that hour sends
    it if it is still open and unacknowledged (another kind of alert on a key already
    mailed about is news: it was dropped before).

    Who: the owners, less those who turned these emails off, and members who turned them
    on (notifications/), each in a message of their own."""
    recent = Flag.objects.filter(
        project_id=flag.project_id,
        api_key_id=flag.api_key_id,
        client_token_id=flag.client_token_id,
        emailed_at__gt=now - EMAIL_EVERY,
    ).exclude(pk=flag.pk)
    if recent.exists():
        return []  # held back until the hour since the key's last email is over
    claimed = Flag.objects.filter(pk=flag.pk, emailed_at__isnull=True).update(emailed_at=now)
    if not claimed:
        return []
    return alert_email_recipients(flag.project_id)


def _email_owners(
    flag: Flag,
    recipients: list[str],
    now: datetime,
    result: DetectionResult,
    run: MailRun,
) -> bool:
    """Send the claimed email, after the claim committed: a transaction open while a mail
    server answers (seconds per recipient) would hold the flag's row, and an owner
    acknowledging it would wait, past the lock timeout get an error. If it reaches nobody
    the claim is given back for a later run, or the email given up (_give_back); a process
    killed between the claim and the send loses that one email (the flag itself stays on
    the alerts page).

    Its text is written inside the same isolation as its send: written before it, a link
    that could not be made (a slug reverse() no longer takes, after an edit by hand or a
    restore) raised out of the run, which stopped every later email and notice of the
    run, and left this one claimed and never sent."""
    project = flag.project
    dashboard = settings.DASHBOARD_URL.rstrip("/")
    try:
        # The alert itself, where its key can be suspended, rolled or revoked in one click.
        link = dashboard + reverse("alerts:flag_list", kwargs={"slug": project.slug})
        link += f"#flag-{flag.pk}"
        calls = evidence_url(flag)
        note = f" ({evidence_note(flag)})" if evidence_note(flag) else ""  # which of them
        calls_line = f"The calls behind it{note}: {dashboard}{calls}\n\n" if calls else ""
        preferences = dashboard + reverse("notifications:preferences")
        sent = send_to_each(
            recipients,
            lambda to: send_mail(
                # Names are the customer's text: one line, so no name can add a mail header.
                subject=one_line(f"[Reminix] {flag.get_kind_display()} in {project.name}"),
                message=(
                    # One line, as the subject: a name saved before names were one line
                    # would otherwise write a paragraph of its own into our email.
                    f"{one_line(flag.summary, limit=SUMMARY_LENGTH)}\n\n"
                    f"First seen {flag.first_seen:%-d %b %Y, %H:%M:%S} UTC.\n\n"
                    f"{calls_line}"
                    "Review it and acknowledge it in the dashboard, where you can also "
                    f"suspend, roll or revoke the key: {link}\n\n"
                    "If the key was leaked, revoke it there and create a new one.\n\n"
                    f"Choose which emails you get from each project: {preferences}\n"
                ),
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=to,
            ),
            run=run,
        )
    except Exception as error:
        if run_must_stop(error):
            raise
        _give_back(flag, now, error)
        result.failures += 1
        return False
    return bool(sent)


def _give_back(flag: Flag, now: datetime, error: Exception) -> None:
    """Give back the claim on an email that was not sent, for a later run (after
    EMAIL_RETRY_WAITS), or give it up after EMAIL_ATTEMPTS tries: logged once then."""
    attempts = flag.email_attempts + 1
    retry_at = now + EMAIL_RETRY_WAITS[attempts - 1] if attempts < EMAIL_ATTEMPTS else None
    Flag.objects.filter(pk=flag.pk, emailed_at=now).update(
        emailed_at=None, email_attempts=attempts, email_retry_at=retry_at
    )
    if retry_at is None:
        logger.warning(
            "detector: email for flag %s reached nobody in %d tries (%s); gave up, the "
            "alert stays on the Alerts page",
            flag.pk,
            attempts,
            type(error).__name__,
        )
    elif isinstance(error, NobodyReached):  # (each recipient's failure is logged already)
        logger.info(
            "detector: email for flag %s reached nobody (try %d of %d); tried again from %s",
            flag.pk,
            attempts,
            EMAIL_ATTEMPTS,
            f"{retry_at:%Y-%m-%d %H:%M:%S} UTC",
        )
    else:  # not the mail server's doing: ours, with its traceback
        logger.exception(
            "detector: email for flag %s not sent (try %d of %d); tried again later",
            flag.pk,
            attempts,
            EMAIL_ATTEMPTS,
        )
