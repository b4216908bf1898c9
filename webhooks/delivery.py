"""Enqueueing alerts for endpoints, and sending what is due, with retries.

`deliver(now)` is what `deliver_webhooks` runs (every few seconds under the scheduler):

1. Each active endpoint gets a delivery for every alert (Flag) of its project raised since
   it was added (and within ENQUEUE_WITHIN, so a scheduler that was down catches up) at
   its minimum severity. The delivery table is the mark: unique(endpoint, flag) and an
   INSERT that ignores conflicts, so two runs at once enqueue each alert once.
2. Each due delivery is claimed (one conditional UPDATE marks it "sending" and pushes its
   next attempt out by CLAIM, so no other run sends it meanwhile and Retry now leaves it
   alone), sent, and recorded: delivered, or failed with the next attempt BACKOFF later,
   or given up after the last. Each send is isolated: an endpoint that times out, refuses
   or raises is recorded and the run goes on, without that endpoint: its other deliveries
   wait for the next run, so one slow or broken endpoint costs a run one attempt at most.

Logs name an endpoint by scheme and host only, never its path or query (a Slack URL's
path is its secret) and never the signing secret.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from alerts.models import Flag
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
# A run stops starting sends after this long; the rest wait a minute for the next run.
RUN_BUDGET_SECONDS = 45.0
BATCH = 200
USER_AGENT = "Reminix-Webhooks/1"


@dataclass
class DeliveryResult:
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
                where(endpoint.url),
                type(error).__name__,
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
    started = time.monotonic()
    seen: set[int] = set()
    failing: set[int] = set()  # endpoints that failed in this run: no more tries this run
    while time.monotonic() - started < RUN_BUDGET_SECONDS:
        moment = now or timezone.now()
        due = list(
            WebhookDelivery.objects.due(moment)
            .exclude(pk__in=seen)
            .exclude(endpoint_id__in=failing)
            .order_by("next_attempt_at", "id")
            .values_list("pk", "endpoint_id")[:BATCH]
        )
        if not due:
            return
        for delivery_id, endpoint_id in due:
            if endpoint_id in failing:
                continue
            seen.add(delivery_id)
            try:
                outcome = attempt(delivery_id, now=now)
            except Exception as error:
                # Recording failed (the database, most likely): the claim lapses and the
                # delivery is tried again later; the others still go.
                result.errors += 1
                logger.error("webhooks: delivery %s: %s", delivery_id, type(error).__name__)
                continue
            if outcome is None:
                continue
            if outcome.ok:
                result.succeeded += 1
            else:
                failing.add(endpoint_id)
                result.failed += 1
                if outcome.error.startswith("Unexpected"):
                    result.errors += 1
            if time.monotonic() - started >= RUN_BUDGET_SECONDS:
                return


def attempt(delivery_id: int, *, now: datetime | None = None) -> Outcome | None:
    """Send one due delivery now, if no one else is: claim it, send, record. None when it
    was not due or someone else claimed it. Never raises for what the endpoint does."""
    moment = now or timezone.now()
    claimed = (
        WebhookDelivery.objects.due(moment)
        .filter(pk=delivery_id)
        .update(status=WebhookDelivery.Status.SENDING, next_attempt_at=moment + CLAIM)
    )
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    try:
        outcome = _send(delivery, endpoint)
    except Exception as error:
        # Ours, not the endpoint's (a secret that no longer decrypts, a bug): recorded as a
        # failed attempt so it backs off, and the run goes on.
        outcome = Outcome(None, f"Unexpected error: {type(error).__name__}")
    if not outcome.ok:
        logger.warning(
            "webhooks: delivery %s to %s failed (attempt %d): %s",
            delivery.event_id,
            where(endpoint.url),
            delivery.attempts + 1,
            outcome.error,
        )
    _record(delivery, outcome, now or timezone.now())
    return outcome


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
    return post(endpoint.url, body=body, headers=headers)


def next_attempt_after(attempts: int, now: datetime) -> datetime | None:
    """When to try again after `attempts` attempts all failed; None: give up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return now + BACKOFF[attempts - 1]


def _record(delivery: WebhookDelivery, outcome: Outcome, now: datetime) -> None:
    attempts = delivery.attempts + 1
    fields: dict[str, object] = {
        "attempts": attempts,
        "last_status_code": outcome.status_code,
        "last_error": outcome.error[:300],
    }
    if outcome.ok:
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
