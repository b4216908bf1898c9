"""The writes behind the Webhooks settings page, for owners only. Each audited in its own
transaction, which starts by checking that the person is an owner still (owner_hold)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import owner_hold
from audit.log import audit_record
from webhooks.models import MAX_ENDPOINTS_PER_PROJECT, WebhookDelivery, WebhookEndpoint
from webhooks.payloads import event_id_new, test_event
from webhooks.signing import secret_encrypt, secret_generate, secret_hint, url_encrypt


class TooManyEndpoints(Exception):
    """The project already has MAX_ENDPOINTS_PER_PROJECT endpoints."""


def webhook_create(
    *,
    project: Project,
    url: str,
    format: str,
    min_severity: str,
    created_by: User,
    ip: str | None = None,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret, which is returned this once."""
    secret = secret_generate()
    with transaction.atomic():
        # Two owners adding the 10th endpoint at once: owner_hold's lock of the project's
        # row serialises them.
        owner_hold(project=project, user=created_by)
        if WebhookEndpoint.objects.for_project(project).count() >= MAX_ENDPOINTS_PER_PROJECT:
            raise TooManyEndpoints(
                f"A project can have {MAX_ENDPOINTS_PER_PROJECT} webhook endpoints; "
                "delete one first."
            )
        endpoint = WebhookEndpoint.objects.create(
            project=project,
            url_encrypted=url_encrypt(url),
            format=format,
            min_severity=min_severity,
            secret_encrypted=secret_encrypt(secret),
            secret_hint=secret_hint(secret),
            created_by=created_by,
        )
        audit_record(
            action="webhook.created",
            actor=created_by,
            project=project,
            target=endpoint,
            target_label=endpoint.display_url,
            ip=ip,
            metadata={"format": format, "min_severity": min_severity},
        )
    return endpoint, secret


def webhook_secret_roll(*, endpoint: WebhookEndpoint, by: User, ip: str | None = None) -> str:
    """A new signing secret for a generic endpoint, returned this once; it signs every
    delivery from now on, retries included, and the old one signs nothing more. At once,
    with no overlap: a secret that leaked must stop being trusted now, and deliveries the
    endpoint refuses until it has the new one are retried (delivery.BACKOFF).
    WebhookEndpoint.DoesNotExist if another owner deleted it meanwhile."""
    if endpoint.format != WebhookEndpoint.Format.GENERIC:
        raise ValueError("Only a signed (generic) endpoint has a secret to roll.")
    secret = secret_generate()
    with transaction.atomic():
        owner_hold(project=endpoint.project, user=by)
        _still_there(endpoint)
        old_hint = endpoint.secret_hint
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            secret_encrypted=secret_encrypt(secret), secret_hint=secret_hint(secret)
        )
        _audit(
            "webhook.secret_rolled",
            endpoint,
            by=by,
            ip=ip,
            old_hint=old_hint,
            new_hint=secret_hint(secret),
        )
    endpoint.refresh_from_db()
    return secret


def webhook_disable(*, endpoint: WebhookEndpoint, by: User, ip: str | None = None) -> bool:
    """Stop sending to it (what is waiting stays, unsent). False if already disabled;
    WebhookEndpoint.DoesNotExist if another owner deleted it meanwhile."""
    with transaction.atomic():
        owner_hold(project=endpoint.project, user=by)
        _still_there(endpoint)
        changed = WebhookEndpoint.objects.filter(pk=endpoint.pk, disabled_at__isnull=True).update(
            disabled_at=timezone.now()
        )
        if changed:
            _audit("webhook.disabled", endpoint, by=by, ip=ip)
    endpoint.refresh_from_db()
    return bool(changed)


def webhook_delete(*, endpoint: WebhookEndpoint, by: User, ip: str | None = None) -> None:
    """Remove it and its delivery log; the audit trail keeps that it existed.
    WebhookEndpoint.DoesNotExist if another owner deleted it meanwhile."""
    with transaction.atomic():
        owner_hold(project=endpoint.project, user=by)
        _still_there(endpoint)
        _audit("webhook.deleted", endpoint, by=by, ip=ip)
        endpoint.delete()


def _still_there(endpoint: WebhookEndpoint) -> None:
    """After owner_hold, which every owner's change of the project's endpoints takes
    first: one another owner deleted while this waited is gone for good, and nothing may
    be done or audited on it (disable failed with a 500, a second delete was audited)."""
    if not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists():
        raise WebhookEndpoint.DoesNotExist("The endpoint was deleted meanwhile.")


def webhook_send_test(
    *, endpoint: WebhookEndpoint, by: User, ip: str | None = None
) -> WebhookDelivery | None:
    """Queue a `webhook.test` event, due now: the scheduler's next `deliver_webhooks` run
    (every WEBHOOK_DELIVERY_EVERY_SECONDS) sends it, once: a failed test is not retried
    on its own (Retry now sends it again). None
    if a test for this endpoint is already waiting: one at a time, however often someone
    clicks, so tests cannot pile up ahead of other projects' alerts.
    WebhookEndpoint.DoesNotExist if another owner deleted it meanwhile.

    It is not sent inside the request: an endpoint that takes its 15 seconds to answer
    would hold a web worker, which the API shares, for that long, and an owner clicking
    again would hold the next one."""
    now = timezone.now()
    event_id = event_id_new()
    with transaction.atomic():
        owner_hold(project=endpoint.project, user=by)
        # Two clicks at once: the endpoint's row makes the second wait, then see the first.
        if WebhookEndpoint.objects.select_for_update().filter(pk=endpoint.pk).first() is None:
            # Another owner deleted it while this waited for the project (owner_hold): a
            # delivery made for it failed its foreign key at the commit, a 500.
            raise WebhookEndpoint.DoesNotExist("The endpoint was deleted meanwhile.")
        waiting = endpoint.deliveries.filter(
            event_type=WebhookDelivery.EventType.TEST, status__in=WebhookDelivery.WAITING
        )
        if waiting.exists():
            return None
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint,
            event_id=event_id,
            event_type=WebhookDelivery.EventType.TEST,
            payload=test_event(event_id=event_id, project=endpoint.project, created_at=now),
            next_attempt_at=now,
            created_at=now,
        )
        _audit("webhook.test_sent", endpoint, by=by, ip=ip, event_id=event_id)
    return delivery


def webhooks_stop_of_deleted_project(
    sender: type, *, project: Project, by: User, ip: str | None, **kwargs: object
) -> None:
    """On accounts' project_deleted (project_delete): every endpoint still sending is
    disabled, each on the audit trail; what is waiting stays, unsent."""
    now = timezone.now()
    for endpoint in WebhookEndpoint.objects.for_project(project).filter(disabled_at__isnull=True):
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(disabled_at=now)
        _audit("webhook.disabled", endpoint, by=by, ip=ip, reason="project deleted")


def delivery_retry_now(
    *, delivery: WebhookDelivery, by: User | None = None, ip: str | None = None
) -> bool:
    """Queue a failed (or given-up) delivery for the next run rather than its next time;
    False if it was neither (already queued, being sent, or delivered). One that had given
    up gets this one attempt, and gives up again if it fails. A delivery a run is sending
    is marked so (delivery.attempt's claim) and is left alone: it is never sent twice.
    Audited when `by` is given (an owner's click). WebhookDelivery.DoesNotExist if it
    went meanwhile with its endpoint, which another owner deleted."""
    with transaction.atomic():
        if by is not None:
            owner_hold(project=delivery.endpoint.project, user=by)
        if not WebhookDelivery.objects.filter(pk=delivery.pk).exists():
            # Reading it back below failed with a 500.
            raise WebhookDelivery.DoesNotExist("The delivery was deleted meanwhile.")
        queued = WebhookDelivery.objects.filter(
            pk=delivery.pk,
            status__in=(WebhookDelivery.Status.FAILED, WebhookDelivery.Status.GAVE_UP),
        ).update(status=WebhookDelivery.Status.PENDING, next_attempt_at=timezone.now())
        delivery.refresh_from_db()
        if queued and by is not None:
            _audit(
                "webhook.retry_queued", delivery.endpoint, by=by, ip=ip, event_id=delivery.event_id
            )
    return bool(queued)


def _audit(
    action: str, endpoint: WebhookEndpoint, *, by: User, ip: str | None, **details: str
) -> None:
    """An audit row about one of the project's endpoints, named by its scheme and host."""
    audit_record(
        action=action,
        actor=by,
        project=endpoint.project,
        target=endpoint,
        target_label=endpoint.display_url,
        ip=ip,
        metadata=details,
    )
