"""The delivery log is kept 30 days: prune_webhook_deliveries, run daily."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from alerts.models import Flag
from tests.conftest import statements_run
from webhooks import delivery as delivery_module
from webhooks import retention
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.retention import deliveries_prune


def _enqueue(now=None) -> int:
    result = delivery_module.DeliveryResult()
    delivery_module.enqueue_alerts(now=now or timezone.now(), result=result)
    return result.enqueued


def _aged(delivery: WebhookDelivery, days: float, status: str) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        created_at=timezone.now() - timedelta(days=days), status=status
    )


def test_deliveries_older_than_30_days_go_and_newer_or_in_flight_ones_stay(
    project, make_endpoint, make_flag
):
    make_endpoint(project, "https://hooks.example.com/hook")
    for _ in range(7):
        make_flag(project)
    assert _enqueue() == 7
    rows = list(WebhookDelivery.objects.order_by("id"))
    _aged(rows[0], 31, "succeeded")
    _aged(rows[1], 31, "gave_up")
    _aged(rows[2], 45, "pending")  # waiting only because its endpoint was disabled
    _aged(rows[3], 31, "sending")  # being sent right now: left to finish
    WebhookDelivery.objects.filter(pk=rows[3].pk).update(
        next_attempt_at=timezone.now() + delivery_module.CLAIM
    )
    _aged(rows[4], 31, "sending")  # its sender died and the claim lapsed long ago
    _aged(rows[5], 29, "succeeded")
    # rows[6]: enqueued just now, pending
    assert deliveries_prune() == 4
    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {
        rows[3].pk,
        rows[5].pk,
        rows[6].pk,
    }
    assert deliveries_prune() == 0  # safe to run again


def test_it_deletes_in_batches_until_none_is_left(project, make_endpoint, make_flag, monkeypatch):
    make_endpoint(project, "https://hooks.example.com/hook")
    for _ in range(5):
        make_flag(project)
    _enqueue()
    WebhookDelivery.objects.update(created_at=timezone.now() - timedelta(days=60))
    monkeypatch.setattr("core.batched_delete.DELETE_BATCH", 2)
    with statements_run() as statements:
        assert deliveries_prune() == 5
    assert len([sql for sql in statements if sql.startswith("DELETE")]) == 3  # 2 + 2 + 1
    assert not WebhookDelivery.objects.exists()


def test_a_delivery_claimed_between_the_read_and_the_delete_is_left_to_its_sender(
    project, make_endpoint, make_flag, monkeypatch
):
    make_endpoint(project, "https://hooks.example.com/hook")
    for _ in range(3):
        make_flag(project)
    _enqueue()
    WebhookDelivery.objects.update(created_at=timezone.now() - timedelta(days=60))
    claimed = WebhookDelivery.objects.order_by("created_at", "id").first()
    monkeypatch.setattr("core.batched_delete.DELETE_BATCH", 2)

    def a_sender_claims_it_meanwhile(execute, sql, params, many, context):
        if sql.startswith("DELETE"):  # the batch was read: a sender claims one of it
            WebhookDelivery.objects.filter(pk=claimed.pk).update(
                status=WebhookDelivery.Status.SENDING,
                next_attempt_at=timezone.now() + delivery_module.CLAIM,
            )
        return execute(sql, params, many, context)

    with connection.execute_wrapper(a_sender_claims_it_meanwhile):
        assert deliveries_prune() == 2
    assert list(WebhookDelivery.objects.values_list("pk", flat=True)) == [claimed.pk]


def test_an_alert_whose_delivery_was_pruned_is_not_sent_again(project, make_endpoint, make_flag):
    """The (endpoint, alert) row marks an alert as enqueued; once it is pruned, the alert
    is far too old to be enqueued again."""
    endpoint, _ = make_endpoint(project, "https://hooks.example.com/hook")
    long_ago = timezone.now() - retention.KEEP - timedelta(minutes=1)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(created_at=long_ago - timedelta(days=1))
    flag = make_flag(project)
    Flag.objects.filter(pk=flag.pk).update(created_at=long_ago)
    assert _enqueue(now=long_ago + timedelta(minutes=1)) == 1
    WebhookDelivery.objects.update(created_at=long_ago, status="succeeded")
    assert deliveries_prune() == 1
    assert _enqueue() == 0
    assert not WebhookDelivery.objects.exists()


def test_the_command_says_how_many_it_removed(project, make_endpoint, make_flag):
    make_endpoint(project, "https://hooks.example.com/hook")
    make_flag(project)
    _enqueue()
    WebhookDelivery.objects.update(created_at=timezone.now() - timedelta(days=31))
    out = StringIO()
    call_command("prune_webhook_deliveries", stdout=out)
    assert out.getvalue() == "Removed 1 webhook delivery.\n"
    call_command("prune_webhook_deliveries", stdout=out)
    assert out.getvalue().endswith("Removed 0 webhook deliveries.\n")


def test_the_delivery_log_says_how_long_deliveries_are_kept(
    signed_in, project, make_endpoint, make_flag
):
    endpoint, _ = make_endpoint(project, "https://hooks.example.com/hook")
    make_flag(project)
    _enqueue()
    page = signed_in.get(
        reverse("webhooks:webhook_detail", args=[project.slug, endpoint.pk])
    ).content.decode()
    assert "Each delivery is kept for 30 days; the latest 50 are shown here." in page
