"""deliver() when one endpoint's work runs out of time: a query that outlasts the
statement timeout (57014), or a delivery row another transaction holds past the lock
timeout (55P03). Either costs that endpoint this run's attempt, every run it recurs, and
the other tenants' deliveries still go."""

from __future__ import annotations

import pytest
from django.utils import timezone

from tests.conftest import row_locked_elsewhere, statements_time_out
from webhooks.delivery import DeliveryResult, deliver, enqueue_alerts
from webhooks.models import WebhookDelivery


@pytest.fixture
def two_endpoints(receiver, project, make_endpoint, make_flag, make_user, make_project):
    """An endpoint of each of two projects, an alert queued for each; mine has waited as
    long as theirs and has the lower id, so it is picked first on every run."""
    mine, _ = make_endpoint(project, receiver.url("/mine"))
    theirs, _ = make_endpoint(make_project(make_user()), receiver.url("/theirs"))
    for endpoint in (mine, theirs):
        make_flag(endpoint.project)
    enqueue_alerts(now=timezone.now(), result=DeliveryResult())
    return mine, theirs


def outcome(result: DeliveryResult) -> tuple[int, int, int]:
    return result.succeeded, result.failed, result.errors


@pytest.mark.django_db(transaction=True)  # deliver() runs in autocommit, as in production
def test_one_endpoints_due_deliveries_too_slow_to_find_cost_only_that_endpoint(
    two_endpoints, receiver
):
    """Before, the time-out ended claiming for the run: nothing was sent to anyone, and
    the same endpoint came first on the next run."""
    mine, _ = two_endpoints

    def my_oldest_due(sql: str, params) -> bool:
        return sql.endswith("LIMIT 1") and '"endpoint_id" = %s)' in sql and params[-1] == mine.pk

    with statements_time_out(my_oldest_due):
        assert outcome(deliver()) == (1, 0, 1)
        assert outcome(deliver()) == (0, 0, 1)
    assert [r.path for r in receiver.requests] == ["/theirs"]
    assert outcome(deliver()) == (1, 0, 0)
    assert [r.path for r in receiver.requests] == ["/theirs", "/mine"]


@pytest.mark.django_db(transaction=True)
def test_a_delivery_held_by_another_transaction_waits_and_the_others_go(
    two_endpoints, receiver, short_lock_timeout
):
    mine, _ = two_endpoints
    with row_locked_elsewhere(WebhookDelivery.objects.get(endpoint=mine)):
        assert outcome(deliver()) == (1, 0, 1)
        assert outcome(deliver()) == (0, 0, 1)
    assert outcome(deliver()) == (1, 0, 0)
    assert [r.path for r in receiver.requests] == ["/theirs", "/mine"]
