"""Who gets a project's emails, and sending them one recipient at a time.

    recipients = alert_email_recipients(project_id)
    sent = send_to_each(recipients, lambda to: send_mail(..., recipient_list=to))

Each person gets a message of their own: a member who opted in does not learn the owners'
addresses, and an address the mail server refuses does not stop the others' messages."""

from __future__ import annotations

import logging
import smtplib
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from functools import partial
from typing import Literal

from django.conf import settings
from django.core.cache import cache
from django.db.models import Exists, OuterRef, Q

from accounts.models import Membership, Passkey, TotpDevice

logger = logging.getLogger(__name__)

type Topic = Literal["alert_emails", "expiry_emails"]
# Where an email stands in its job's order: its row's id, after its kind's number. A
# tenant is the same: whose it is (a project's id, a person's), after its kind's number.
type Place = tuple[int, ...]


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


# After an email that reached nobody (every recipient refused or unanswered), the waits
# before each next try, one after each; given up after the last: an alert's email
# (alerts.detection.emails) and a PAT's new-network notice (alerts.token_networks). Every
# three hours to the end: a mail server down for most of a day (an expired credential
# found the next morning) still delivers.
RETRY_WAITS = (
    timedelta(0),  # the next run: a mail server's moment
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    *[timedelta(hours=3)] * 6,
)


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


class MailRun:
    """One run of a job's mail (the detector's alerts, the expiry reminders): the
    addresses the mail server did not answer for, and the time its sends may take.

    With the mail server down for everyone, each send waited EMAIL_TIMEOUT: one per
    address with mail owed, 100 of them 1,000 s a run, and the detector's next run (every
    tenant's new alerts) waited behind it. Once the sends of a run took
    MAIL_RUN_BUDGET_SECONDS, the run's other emails are not claimed: they stay owed for
    the next run, and are logged once, with their count. The time is what the sends took,
    so a server that refuses at once costs the budget almost nothing.

    Fairness: tenants take turns, an email each, and the next run starts after the last
    email this one tried and goes round (`in_turn`), so neither one tenant's pile nor the
    oldest emails, whose addresses may hang every run, take every run's budget while the
    others wait. Where it stopped is kept in the cache (Redis when REDIS_URL is set);
    without it a run starts from the oldest."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.budget: float = settings.MAIL_RUN_BUDGET_SECONDS
        self.spent = 0.0
        self.owed = 0  # emails left for the next run because the budget was spent
        self.unanswered: set[str] = set()
        self._last: tuple[Place, Place] | None = None  # the last item tried: its tenant, place

    def spent_all(self) -> bool:
        return self.spent >= self.budget

    def timed(self, send: Callable[[], object]) -> None:
        start = time.monotonic()
        try:
            send()
        finally:
            self.spent += time.monotonic() - start

    def in_turn[T](
        self,
        items: Iterable[T],
        *,
        place: Callable[[T], Place],
        tenant: Callable[[T], Place],
    ) -> Iterator[T]:
        """The items a tenant (a project, a person) at a time, round robin: each tenant's
        first, then each one's second, and so on. Tenants go in the order of their keys,
        starting after the tenant of the last item the previous run tried before its
        budget ran out; each one's items in the order of their places (their ids),
        starting after that item's place, and round. Those left once the budget is spent
        are counted owed and not given.

        By place alone, a tenant with many emails owed (a project with 10,000 keys
        expiring this week) took every run's budget, and another's one email waited for
        them all: thousands of runs."""
        last = self._resume_after()
        queues: dict[Place, list[T]] = {}
        for item in sorted(items, key=place):
            queues.setdefault(tenant(item), []).append(item)
        tenants = sorted(queues)
        if last is not None:
            last_tenant, last_place = last
            tenants = [t for t in tenants if t > last_tenant] + [
                t for t in tenants if t <= last_tenant
            ]
            for key, queue in queues.items():
                queues[key] = [i for i in queue if place(i) > last_place] + [
                    i for i in queue if place(i) <= last_place
                ]
        for item in _round_robin([queues[t] for t in tenants]):
            if self.spent_all():
                self.owed += 1
                continue
            self._last = (tenant(item), place(item))
            yield item

    def finish(self) -> None:
        """Log the emails left owed, once, and keep where to start next run."""
        key = f"mail-run:{self.name}"
        if not self.owed:
            self._cache(lambda: cache.delete(key))
            return
        logger.warning(
            "%s: mail took its budget of %gs; %d emails stay owed for the next run",
            self.name,
            self.budget,
            self.owed,
        )
        self._cache(lambda: cache.set(key, self._last, timeout=86400))

    def _resume_after(self) -> tuple[Place, Place] | None:
        found: list[object] = []
        self._cache(lambda: found.append(cache.get(f"mail-run:{self.name}")))
        value = found[0] if found else None
        # Anything else (a place alone, kept before tenants took turns) starts from the first.
        if (
            isinstance(value, tuple)
            and len(value) == 2
            and all(isinstance(half, tuple) for half in value)
            and all(isinstance(part, int) for half in value for part in half)
        ):
            return value
        return None

    def _cache(self, use: Callable[[], object]) -> None:
        # A cache that is down costs the order its fairness, never the run its mail.
        try:
            use()
        except Exception as error:  # noqa: BLE001 - whatever the cache backend raises
            logger.warning(
                "%s: where mail stopped could not be kept or read (%s)",
                self.name,
                type(error).__name__,
            )


def _round_robin[T](queues: list[list[T]]) -> Iterator[T]:
    """Each queue's first item, then each one's second, and so on."""
    turns = deque(iter(queue) for queue in queues)
    while turns:
        queue = turns.popleft()
        try:
            item = next(queue)
        except StopIteration:
            continue
        turns.append(queue)
        yield item


def send_to_each(
    recipients: Iterable[str],
    send: Callable[[list[str]], object],
    *,
    run: MailRun | None = None,
) -> int:
    """`send([address])` for each recipient; returns how many went. A failure is logged
    and the others still go. If none went, raises NobodyReached (from the last failure),
    so the email is owed and retried; if some went, the failed ones are not retried, or
    the others would get it twice.

    `run`, one for a whole run: the addresses the mail server did not answer for
    (UNANSWERED), which the run does not try again, and the time its sends took
    (MailRun). A server that hangs on one tenant's addresses cost EMAIL_TIMEOUT for each
    of their messages (an alert's, a key's reminder), and every other tenant's emails
    waited behind them all."""
    sent, failure, skipped = 0, None, False
    for address in recipients:
        if run is not None and address in run.unanswered:
            skipped = True
            continue
        try:
            if run is None:
                send([address])
            else:
                run.timed(partial(send, [address]))
        except Exception as refused:  # noqa: BLE001 - whatever the mail backend raises
            # Its kind only, as every sender logs a failed mail: the error's text names
            # the address (SMTPRecipientsRefused, UnicodeEncodeError), and the log is no
            # place for one.
            logger.warning(
                "email to one recipient not sent (%s); the others still are",
                type(refused).__name__,
            )
            failure = refused
            if run is not None and isinstance(refused, UNANSWERED):
                run.unanswered.add(address)
        else:
            sent += 1
    if (failure is not None or skipped) and not sent:
        # Not raised from the failure: a job logs this with its traceback, which would
        # print the failure's text, address and all.
        kind = type(failure).__name__ if failure is not None else "not tried again this run"
        raise NobodyReached(f"no recipient could be emailed ({kind})")
    return sent
