"""Who gets a project's emails, and sending them one recipient at a time.

    recipients = alert_email_recipients(project_id)
    sent = send_to_each(recipients, lambda to: send_mail(..., recipient_list=to))

Each person gets a message of their own: a member who opted in does not learn the owners'
addresses, and an address the mail server refuses does not stop the others' messages."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable, Iterable
from typing import Literal

from django.db.models import Exists, OuterRef, Q

from accounts.models import Membership, Passkey, TotpDevice

logger = logging.getLogger(__name__)

type Topic = Literal["alert_emails", "expiry_emails"]


def default_on(role: str) -> bool:
    """What a member who never chose gets: owners both kinds of email, others neither."""
    return role == Membership.Role.OWNER


def _recipients(project_id: int, topic: Topic) -> list[str]:
    chose_yes = Q(**{f"notification_preference__{topic}": True})
    never_chose = Q(**{f"notification_preference__{topic}__isnull": True})
    # A project that requires two-factor shows its pages only to members who have a
    # second factor: its mail (key names, addresses, alerts) goes to them alone too.
    has_app = TotpDevice.objects.filter(user=OuterRef("user_id"), confirmed_at__isnull=False)
    has_passkey = Passkey.objects.filter(user=OuterRef("user_id"))
    may_see = Q(project__require_two_factor=False) | Exists(has_app) | Exists(has_passkey)
    return list(
        Membership.objects.filter(project_id=project_id, user__is_active=True)
        .filter(chose_yes | (never_chose & Q(role=Membership.Role.OWNER)))
        .filter(may_see)
        .order_by("id")
        .values_list("user__email", flat=True)
    )


def alert_email_recipients(project_id: int) -> list[str]:
    """Who is emailed about the project's new high-severity alerts."""
    return _recipients(project_id, "alert_emails")


def expiry_email_recipients(project_id: int) -> list[str]:
    """Who is reminded that one of the project's API keys expires soon."""
    return _recipients(project_id, "expiry_emails")


class NobodyReached(Exception):
    """Every recipient's message failed: the caller's claim should be undone, so the
    email is tried again next run."""


# What says the mail server did not answer for an address at all (it hung until
# EMAIL_TIMEOUT, closed the connection, refused it or the recipient), not that it refused
# one message: the next message to that address in the same run would fare the same.
UNANSWERED = (
    TimeoutError,
    ConnectionError,
    smtplib.SMTPServerDisconnected,
    smtplib.SMTPConnectError,
    smtplib.SMTPRecipientsRefused,
)


def send_to_each(
    recipients: Iterable[str],
    send: Callable[[list[str]], object],
    *,
    unanswered: set[str] | None = None,
) -> int:
    """`send([address])` for each recipient; returns how many went. A failure is logged
    and the others still go. If none went, raises NobodyReached (from the last failure),
    so the email is owed and retried; if some went, the failed ones are not retried, or
    the others would get it twice.

    `unanswered`, one set for a whole run: the addresses the mail server did not answer
    for (UNANSWERED), which the run does not try again. A server that hangs on one
    tenant's addresses cost EMAIL_TIMEOUT for each of their messages (an alert's, a key's
    reminder), and every other tenant's emails waited behind them all."""
    sent, failure, skipped = 0, None, False
    for address in recipients:
        if unanswered is not None and address in unanswered:
            skipped = True
            continue
        try:
            send([address])
        except Exception as refused:  # noqa: BLE001 - whatever the mail backend raises
            logger.exception("email to one recipient not sent; the others still are")
            failure = refused
            if unanswered is not None and isinstance(refused, UNANSWERED):
                unanswered.add(address)
        else:
            sent += 1
    if (failure is not None or skipped) and not sent:
        raise NobodyReached("no recipient could be emailed") from failure
    return sent
