"""How long the webhook delivery log is kept: `manage.py prune_webhook_deliveries`, daily.

A delivery is removed KEEP after it was enqueued, whatever became of it: by then an alert
has long been delivered or given up (its retries end within nine hours), and one still
waiting can only be for an endpoint that was disabled, where sending a month-old alert
would mislead more than it tells. One being sent at that moment is left to finish.
Oldest first, a thousand rows at a time, on an index of their age (core.batched_delete).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from core.batched_delete import delete_in_batches
from webhooks.models import WebhookDelivery

# Far longer than delivery.ENQUEUE_WITHIN: the (endpoint, alert) rows mark what was
# enqueued, and removing one whose alert could still be enqueued would send it again.
KEEP = timedelta(days=30)


def deliveries_prune(*, now: datetime | None = None) -> int:
    """Remove the deliveries enqueued more than KEEP ago; how many were removed."""
    moment = now or timezone.now()
    old = WebhookDelivery.objects.filter(created_at__lt=moment - KEEP).exclude(
        # A claim that has not lapsed: its sender is at work (one that died, never mind).
        status=WebhookDelivery.Status.SENDING,
        next_attempt_at__gt=moment,
    )
    # The conditions again at each DELETE: a row claimed since it was read stays.
    return delete_in_batches(old, order_by="created_at", recheck=True)
