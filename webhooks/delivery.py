"""Enqueueing alerts for endpoints, and sending what is due, with retries.

`deliver(now)` is what `deliver_webhooks` runs (every few seconds under the scheduler):

1. Each active endpoint gets a delivery for every alert (Flag) of its project raised since
   it was added (and within ENQUEUE_WITHIN, so a scheduler that was down catches up) at
   its minimum severity. The delivery table is the mark: unique(endpoint, flag) and an
   INSERT that ignores conflicts, so two runs at once enqueue each alert once.
2. Each due delivery is claimed (one conditional UPDATE marks it "sending" and pushes its
   next attempt out by CLAIM, so no other run sends it meanwhile and Retry now leaves it
   alone), sent, and recorded: delivered, or failed with the next attempt BACKOFF later,
   or given up after the last. Up to SENDERS deliveries are in flight at once, each to a
   different endpoint and at most PER_PROJECT for one project (and PER_PERSON for the
   endpoints one person made, in all their projects), the projects served least in the
   run first, so endpoints that never answer hold a sender each and the others keep
   going. Each send is isolated: an endpoint that times out, refuses or raises is
   recorded and the run goes on, without that endpoint: its other deliveries wait for the
   next run, so one slow or broken endpoint costs a run one attempt at most. So does one
   whose backlog outlasts the statement timeout, or whose delivery row another transaction
   holds past the lock timeout (core/db_errors.py); only a lost database stops claiming.

Logs name an endpoint by scheme and host only, never its path or query (a Slack URL's
path is its secret) and never the signing secret.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.fernet import InvalidToken
from django.db import DatabaseError, transaction
from django.db.models import Min
from django.utils import timezone

from alerts.models import Flag
from core.db_errors import run_must_stop
from webhooks.models import SEVERITY_RANK, WebhookDelivery, WebhookEndpoint
from webhooks.payloads import alert_event, body_bytes, event_id_new, slack_message
from webhooks.signing import secret_decrypt, signature_header
from webhooks.transport import Outcome, post, where

logger = logging.getLogger(__name__)

# After the 1st, 2nd, … failed attempt, the next one this much later; after the last, give up.
BACKOFF = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
)
MAX_ATTEMPTS = len(BACKOFF) + 1
# Longer than one attempt can take (transport: 5 s to connect, 15 s in all to answer).
CLAIM = timedelta(minutes=2)
ENQUEUE_WITHIN = timedelta(days=1)
# A run stops starting sends after this long; the rest wait for the next run.
RUN_BUDGET_SECONDS = 45.0
# Attempts in flight at once, each to a different endpoint: endpoints that never answer
# hold one sender each for an attempt (transport.TOTAL), and the others keep sending.
SENDERS = 8
# Of them, at most this many to one project's endpoints (it may have 10), so one project
# cannot take every sender.
PER_PROJECT = 2
# And at most this many to the endpoints one person made, in all their projects: a person
# may make up to 100 projects (accounts.services.MAX_PROJECTS_PER_PERSON), and four of
# them, each within PER_PROJECT, with silent endpoints and alerts waiting since before
# anyone else's, held every sender run after run while their backlog lasted (which
# acknowledging an alert a minute refills). As the DNS lookups are shared (addresses.py).
PER_PERSON = 2
BATCH = 200
USER_AGENT = "Reminix-Webhooks/1"


@dataclass
class DeliveryResult:
    """What one deliver() run did, which deliver_webhooks prints (only when something happened)."""

    enqueued: int = 0
    succeeded: int = 0
    failed: int = 0
    # Enqueues or sends that raised: logged, recorded where possible, and skipped.
    errors: int = 0


def deliver(*, now: datetime | None = None) -> DeliveryResult:
    result = DeliveryResult()
    enqueue_alerts(now=now or timezone.now(), result=result)
    send_due(result=result, now=now)
    return result


def enqueue_alerts(*, now: datetime, result: DeliveryResult) -> None:
    # Only the projects with an alert in the window can have anything to enqueue: one
    # query, so a run with nothing new costs the same for ten endpoints or ten thousand.
    alerted = Flag.objects.filter(created_at__gte=now - ENQUEUE_WITHIN).values("project_id")
    endpoints = WebhookEndpoint.objects.active().filter(project_id__in=alerted)
    for endpoint in endpoints.select_related("project"):
        try:
            result.enqueued += _enqueue_for(endpoint, now)
        except Exception as error:
            result.errors += 1
            logger.error(
                "webhooks: enqueueing for endpoint %s (%s) failed: %s",
                endpoint.pk,
                _where(endpoint),
                type(error).__name__,
            )


# What an alert's event reads (payloads.alert_event), and no more: a key's or client
# token's JSON (scopes, context) that Python cannot read back (put there by hand, a
# restore) failed the endpoint's enqueue, and every alert of its project, on every run.
_ALERT_READ = (
    "kind",
    "severity",
    "summary",
    "first_seen",
    "last_seen",
    "occurrences",
    # Written by the detector alone, and read by the Alerts page too: "at_least".
    "evidence",
    "project__slug",
    "project__name",
    "api_key__name",
    "api_key__hint",
    "client_token__public_id",
    "client_token__hint",
)


def _enqueue_for(endpoint: WebhookEndpoint, now: datetime) -> int:
    severities = [s for s, rank in SEVERITY_RANK.items() if endpoint.wants(s)]
    done = WebhookDelivery.objects.filter(endpoint=endpoint, flag__isnull=False).values("flag_id")
    flags = list(
        Flag.objects.filter(
            project_id=endpoint.project_id,
            created_at__gte=max(endpoint.created_at, now - ENQUEUE_WITHIN),
            severity__in=severities,
        )
        .exclude(pk__in=done)
        .select_related("project", "api_key", "client_token")
        .only(*_ALERT_READ)
        .order_by("id")
    )
    rows = []
    for flag in flags:
        event_id = event_id_new()
        rows.append(
            WebhookDelivery(
                endpoint=endpoint,
                flag=flag,
                event_id=event_id,
                event_type=WebhookDelivery.EventType.ALERT_RAISED,
                payload=alert_event(event_id=event_id, flag=flag, created_at=now),
                next_attempt_at=now,
                created_at=now,
            )
        )
    # A run that got there first already inserted some: those rows are skipped.
    WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def send_due(*, result: DeliveryResult, now: datetime | None = None) -> None:
    """Send what is due, up to SENDERS at once, until nothing is due or RUN_BUDGET_SECONDS
    have passed. Each endpoint has one attempt in flight at most, each project PER_PROJECT,
    the endpoints one person made PER_PERSON, and the projects served least in this run
    go first. The database is used from this thread only: the senders do nothing but the
    POST."""
    started = time.monotonic()
    seen: set[int] = set()
    failing: set[int] = set()  # endpoints that failed in this run: no more tries this run
    served: Counter[int] = Counter()  # attempts started in this run, by project
    claiming = True
    with ThreadPoolExecutor(SENDERS, thread_name_prefix="webhook-send") as senders:
        sending: dict[Future[Outcome], WebhookDelivery] = {}
        while True:
            if claiming and time.monotonic() - started < RUN_BUDGET_SECONDS:
                try:
                    claimed = _claim_next(
                        list(sending.values()), failing, seen, served, now, result
                    )
                except Exception as error:
                    # The database, most likely: nothing more is claimed in this run, but
                    # what is in flight is still recorded (else it would go out twice).
                    claiming, claimed = False, []
                    result.errors += 1
                    logger.error("webhooks: finding due deliveries: %s", type(error).__name__)
                for delivery in claimed:
                    seen.add(delivery.pk)
                    served[delivery.endpoint.project_id] += 1
                    sending[senders.submit(_send, delivery, delivery.endpoint)] = delivery
            if not sending:
                return
            finished, _ = wait(sending, return_when=FIRST_COMPLETED)
            for future in finished:
                delivery, outcome = sending.pop(future), _outcome_of(future)
                if not outcome.ok:
                    failing.add(delivery.endpoint_id)
                try:
                    _finish(delivery, outcome, now or timezone.now(), result)
                except Exception as error:
                    # Recording failed (the database, most likely): the claim lapses and
                    # the delivery is tried again later; the others still go.
                    result.errors += 1
                    logger.error("webhooks: delivery %s: %s", delivery.pk, type(error).__name__)


def _claim_next(
    in_flight: list[WebhookDelivery],
    failing: set[int],
    seen: set[int],
    served: Counter[int],
    now: datetime | None,
    result: DeliveryResult,
) -> list[WebhookDelivery]:
    """Claim the next deliveries to send, one for each free sender: for endpoints with
    nothing in flight, projects under PER_PROJECT and people (whoever made the endpoint)
    under PER_PERSON, the projects served least in this run first, then the endpoints
    that have waited longest; each endpoint's oldest due."""
    wanted = SENDERS - len(in_flight)
    if wanted <= 0:
        return []
    moment = now or timezone.now()
    per_project = Counter(d.endpoint.project_id for d in in_flight)
    per_person = Counter(d.endpoint.created_by_id for d in in_flight)
    due = WebhookDelivery.objects.due(moment).exclude(pk__in=seen)
    picked: list[int] = []
    while len(picked) < wanted:
        rows = list(
            due.exclude(endpoint_id__in=failing | {d.endpoint_id for d in in_flight} | {*picked})
            .exclude(
                endpoint__project_id__in=[p for p, n in per_project.items() if n >= PER_PROJECT]
            )
            .exclude(
                endpoint__created_by_id__in=[
                    p for p, n in per_person.items() if p is not None and n >= PER_PERSON
                ]
            )
            .values_list("endpoint_id", "endpoint__project_id", "endpoint__created_by_id")
            .annotate(waiting_since=Min("next_attempt_at"))
            .order_by("waiting_since", "endpoint_id")[:BATCH]
        )
        passed_over = False
        # sorted() keeps the waiting order among projects served alike.
        for endpoint_id, project_id, person_id, _ in sorted(rows, key=lambda row: served[row[1]]):
            if per_project[project_id] >= PER_PROJECT or (
                person_id is not None and per_person[person_id] >= PER_PERSON
            ):
                passed_over = True
                continue
            per_project[project_id] += 1
            per_person[person_id] += 1
            picked.append(endpoint_id)
            if len(picked) == wanted:
                break
        # A batch of one person's endpoints passed over (they have waited longest, and
        # there may be a thousand) hid everyone else's: asked again without them. Each
        # pass that passed one over picked one too, so this ends.
        if not passed_over or len(rows) < BATCH:
            break
    claimed = []
    for endpoint_id in picked:
        try:
            oldest = (
                due.filter(endpoint_id=endpoint_id)
                .order_by("next_attempt_at", "id")
                .values_list("pk", flat=True)
                .first()
            )
        except DatabaseError as error:
            if run_must_stop(error):
                raise  # the database gone, or SQL it cannot run: claiming ends for the run
            # A statement timeout on this endpoint's backlog: no more tries for it this
            # run. Raised, it ended claiming for everyone, and the endpoint that has waited
            # longest comes first again on the next run.
            failing.add(endpoint_id)
            result.errors += 1
            logger.error(
                "webhooks: finding endpoint %s's due deliveries: %s",
                endpoint_id,
                type(error).__name__,
            )
            continue
        if oldest is None:
            continue
        try:
            delivery = _claim(oldest, moment)
        except Exception as error:
            # This row only, it seems (the next query finds out): skipped for this run.
            seen.add(oldest)
            result.errors += 1
            logger.error("webhooks: claiming delivery %s: %s", oldest, type(error).__name__)
            continue
        if delivery is not None:
            claimed.append(delivery)
    return claimed


def attempt(delivery_id: int, *, now: datetime | None = None) -> Outcome | None:
    """Send one due delivery now, if no one else is: claim it, send, record. None when it
    was not due or someone else claimed it. Never raises for what the endpoint does."""
    delivery = _claim(delivery_id, now or timezone.now())
    if delivery is None:
        return None
    try:
        outcome = _send(delivery, delivery.endpoint)
    except Exception as error:
        outcome = _unexpected(error)
    _finish(delivery, outcome, now or timezone.now())
    return outcome


def _claim(delivery_id: int, now: datetime) -> WebhookDelivery | None:
    """Mark a due delivery "sending" and push its next attempt out by CLAIM, so that no
    other run sends it meanwhile; None if it was not due or another run got it first."""
    claimed = (
        WebhookDelivery.objects.due(now)
        .filter(pk=delivery_id)
        .update(status=WebhookDelivery.Status.SENDING, next_attempt_at=now + CLAIM)
    )
    if not claimed:
        return None
    return WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)


def _outcome_of(future: Future[Outcome]) -> Outcome:
    error = future.exception()
    return future.result() if error is None else _unexpected(error)


def _unexpected(error: BaseException) -> Outcome:
    # Ours, not the endpoint's (a secret that no longer decrypts, a bug): recorded as a
    # failed attempt so it backs off, and the run goes on.
    return Outcome(None, f"Unexpected error: {type(error).__name__}")


def _where(endpoint: WebhookEndpoint) -> str:
    """transport.where() of the endpoint's URL. A URL that no longer decrypts (SECRET_KEY
    replaced, the old one not kept in SECRET_KEY_FALLBACKS) must not stop the attempt
    from being recorded: it fails as "Unexpected error", and backs off."""
    try:
        return where(endpoint.url)
    except InvalidToken:
        return "(address unreadable)"


def _finish(
    delivery: WebhookDelivery,
    outcome: Outcome,
    now: datetime,
    result: DeliveryResult | None = None,
) -> None:
    """Log a failed attempt, record the attempt, count it in `result`."""
    if not outcome.ok:
        logger.warning(
            "webhooks: delivery %s to %s failed (attempt %d): %s",
            delivery.event_id,
            _where(delivery.endpoint),
            delivery.attempts + 1,
            outcome.error,
        )
    _record(delivery, outcome, now)
    if result is None:
        return
    if outcome.ok:
        result.succeeded += 1
    else:
        result.failed += 1
        if outcome.error.startswith("Unexpected"):
            result.errors += 1


def request_for(
    delivery: WebhookDelivery, endpoint: WebhookEndpoint, *, timestamp: int
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one attempt (a retry is signed afresh, with its own time)."""
    if endpoint.format == WebhookEndpoint.Format.SLACK:
        body = body_bytes(slack_message(delivery.payload))
    else:
        body = body_bytes(delivery.payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Reminix-Event-Id": delivery.event_id,
        "Reminix-Timestamp": str(timestamp),
    }
    if endpoint.format == WebhookEndpoint.Format.GENERIC:
        secret = secret_decrypt(endpoint.secret_encrypted)
        headers["Reminix-Signature"] = signature_header(secret, timestamp=timestamp, body=body)
    return body, headers


def _send(delivery: WebhookDelivery, endpoint: WebhookEndpoint) -> Outcome:
    body, headers = request_for(delivery, endpoint, timestamp=int(time.time()))
    return post(
        endpoint.url,
        body=body,
        headers=headers,
        project_id=endpoint.project_id,
        person_id=endpoint.created_by_id,
    )


def next_attempt_after(attempts: int, now: datetime) -> datetime | None:
    """When to try again after `attempts` attempts all failed; None: give up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return now + BACKOFF[attempts - 1]


def _record(delivery: WebhookDelivery, outcome: Outcome, now: datetime) -> None:
    attempts = delivery.attempts + (1 if outcome.attempted else 0)
    fields: dict[str, object] = {
        "attempts": attempts,
        "last_status_code": outcome.status_code,
        "last_error": outcome.error[:300],
    }
    if not outcome.attempted:
        # Nothing was sent (no DNS lookup could start, others' still running): counted,
        # it gave an alert up unsent while other projects' lookups held them all, or
        # another endpoint's of its project held the project's share. One whose earlier
        # attempt failed stays failed (and said so): "queued" hid that failure.
        waits_as = (
            WebhookDelivery.Status.FAILED if delivery.attempts else WebhookDelivery.Status.PENDING
        )
        fields.update(status=waits_as, next_attempt_at=now + BACKOFF[0])
    elif outcome.ok:
        fields.update(
            status=WebhookDelivery.Status.SUCCEEDED, delivered_at=now, next_attempt_at=None
        )
    else:
        # A test is tried once (Retry now tries it again): only alerts are retried on
        # their own, so an owner's clicks cannot keep the sender busy for hours.
        is_test = delivery.event_type == WebhookDelivery.EventType.TEST
        retry_at = None if is_test else next_attempt_after(attempts, now)
        fields.update(
            status=WebhookDelivery.Status.FAILED if retry_at else WebhookDelivery.Status.GAVE_UP,
            next_attempt_at=retry_at,
        )
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    for name, value in fields.items():
        setattr(delivery, name, value)
