"""Two senders claiming one delivery at once (two schedulers, a scheduler and a manual
`deliver_webhooks`): on PostgreSQL the second waits for the first's claim, and once that
commits it must find the delivery claimed, not send it a second time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tests.conftest import another_connection, commit_once_it_waits
from webhooks.delivery import CLAIM, DeliveryResult, _claim, enqueue_alerts
from webhooks.models import WebhookDelivery


@pytest.mark.django_db(transaction=True)
def test_a_claim_that_waited_for_another_finds_the_delivery_taken(
    project, make_endpoint, make_flag
):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: the lock is PostgreSQL's.")
    make_endpoint(project, "https://hooks.example.com/hook")
    make_flag(project)
    now = timezone.now()
    enqueue_alerts(now=now - timedelta(seconds=1), result=DeliveryResult())
    delivery = WebhookDelivery.objects.get()

    claims = []
    with another_connection() as other:
        # The other sender's claim, as _claim makes it, not yet committed.
        other.execute(
            "UPDATE webhooks_webhookdelivery SET status = 'sending', next_attempt_at = %s "
            "WHERE id = %s",
            [now + CLAIM, delivery.pk],
        )
        waited = commit_once_it_waits(other, lambda: claims.append(_claim(delivery.pk, now)))

    assert waited
    assert claims == [None]
    assert WebhookDelivery.objects.get().next_attempt_at == now + CLAIM
