"""Sending in parallel: one tenant's slow, silent or backlogged endpoints leave senders for
everyone else, and nothing is sent twice when the database fails mid-run."""

from __future__ import annotations

import time
from datetime import timedelta

from django.db import OperationalError, connections
from django.utils import timezone

from webhooks import delivery as delivery_module
from webhooks.delivery import PER_PERSON, PER_PROJECT, deliver
from webhooks.models import WebhookDelivery, WebhookEndpoint


def _backlog(endpoint: WebhookEndpoint, n: int, since) -> None:
    """`n` alerts due since `since`, oldest first, as a failing endpoint piles them up."""
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            endpoint=endpoint,
            event_id=f"evt_backlog_{endpoint.pk}_{i}",
            event_type=WebhookDelivery.EventType.ALERT_RAISED,
            payload={"id": f"evt_backlog_{endpoint.pk}_{i}"},
            next_attempt_at=since + timedelta(milliseconds=i),
            created_at=since,
        )
        for i in range(n)
    )


def test_one_endpoint_never_has_two_attempts_in_flight(receiver, project, make_endpoint, make_flag):
    receiver.delay = 0.2
    make_endpoint(project, receiver.url("/one"))
    for _ in range(4):
        make_flag(project)
    result = deliver()
    assert result.succeeded == 4
    assert receiver.most_at_once == {"/one": 1}


def test_silent_endpoints_with_backlogs_longer_than_a_batch_hold_one_sender_each(
    receiver, make_endpoint, make_flag, make_user, make_project, monkeypatch, silent_url
):
    """Each silent endpoint's backlog fills a whole query batch; the other tenant's new
    alert still goes out at once, not after one timeout per silent endpoint."""
    monkeypatch.setattr("webhooks.transport.TIMEOUT", 2.0)
    long_ago = timezone.now() - timedelta(hours=1)
    for n in range(3):
        silent = make_project(make_user(), name=f"Silent {n}")
        endpoint, _ = make_endpoint(silent, silent_url())
        _backlog(endpoint, delivery_module.BATCH + 5, long_ago + timedelta(minutes=n))
    fine = make_project(make_user(), name="Fine")
    make_endpoint(fine, receiver.url("/fine"))
    make_flag(fine)
    started = time.monotonic()
    result = deliver()
    assert [r.path for r in receiver.requests] == ["/fine"]
    assert receiver.requests[0].at - started < 1.5
    assert (result.succeeded, result.failed) == (1, 3)  # one try each, then left for later


def test_a_slow_endpoint_with_a_long_backlog_leaves_the_other_senders_free(
    receiver, make_endpoint, make_flag, make_user, make_project, monkeypatch
):
    monkeypatch.setattr(delivery_module, "RUN_BUDGET_SECONDS", 1.0)
    receiver.delay = 0.1
    busy = make_project(make_user(), name="Busy")
    endpoint, _ = make_endpoint(busy, receiver.url("/busy"))
    _backlog(endpoint, 250, timezone.now() - timedelta(minutes=5))
    other = make_project(make_user(), name="Other")
    make_endpoint(other, receiver.url("/other"))
    make_flag(other)
    started = time.monotonic()
    deliver()
    arrived = {r.path: r.at - started for r in reversed(receiver.requests)}
    assert arrived["/other"] < 0.5
    assert receiver.most_at_once["/busy"] == 1


def test_one_project_cannot_take_every_sender(
    receiver, project, make_endpoint, make_flag, make_user, make_project, monkeypatch, silent_url
):
    """A project may have 10 endpoints: 8 that never answer and one alert would otherwise
    hold all 8 senders for a whole attempt."""
    monkeypatch.setattr("webhooks.transport.TIMEOUT", 2.0)
    monkeypatch.setattr(delivery_module, "RUN_BUDGET_SECONDS", 1.0)
    for _ in range(8):
        make_endpoint(project, silent_url())
    make_flag(project)  # one alert, 8 deliveries
    victim = make_project(make_user(), name="Victim")
    make_endpoint(victim, receiver.url("/fine"))
    make_flag(victim)
    started = time.monotonic()
    result = deliver()
    assert receiver.requests[0].at - started < 1.5  # not after a timeout
    assert result.succeeded == 1
    tried = WebhookDelivery.objects.filter(endpoint__project=project, attempts=1)
    assert tried.count() == PER_PROJECT  # the budget ran out before a second wave


def test_the_project_served_least_goes_first(
    receiver, project, make_endpoint, make_flag, make_user, make_project, monkeypatch
):
    """With two senders: two of one project's endpoints go first; when /a's answer frees a
    sender, a project not served yet in the run goes before that project's third
    endpoint, however much longer the third has waited."""
    monkeypatch.setattr(delivery_module, "SENDERS", 2)
    first_due = timezone.now() - timedelta(minutes=10)
    for name in ("a", "b", "c"):
        endpoint, _ = make_endpoint(project, receiver.url(f"/{name}"))
        _backlog(endpoint, 1, first_due)
    late = make_project(make_user(), name="Late")
    make_endpoint(late, receiver.url("/late"))
    make_flag(late)
    send = delivery_module._send

    def b_is_slow(delivery, endpoint):
        outcome = send(delivery, endpoint)
        if endpoint.url.endswith("/b"):
            time.sleep(0.5)  # its answer takes a while yet
        return outcome

    monkeypatch.setattr(delivery_module, "_send", b_is_slow)
    deliver()
    order = [r.path for r in receiver.requests]
    # /b's request may reach the receiver after /late's: the two are sent from different
    # threads at once. What is fixed is that /late is sent only after /a's answer, and /c
    # only after /late's, though /c has waited ten minutes longer.
    assert sorted(order) == ["/a", "/b", "/c", "/late"]
    assert order.index("/a") < order.index("/late") < order.index("/c")


def test_a_database_error_mid_run_still_records_what_is_in_flight(
    receiver, make_endpoint, make_flag, make_user, make_project, monkeypatch
):
    """The query for the next deliveries fails while one is being sent: that one is still
    recorded, so it is not sent again once its claim lapses."""
    slow_project, fine_project = make_project(make_user()), make_project(make_user())
    make_endpoint(slow_project, receiver.url("/slow"))
    make_endpoint(fine_project, receiver.url("/fine"))
    make_flag(slow_project)
    make_flag(fine_project)
    send, claim_next = delivery_module._send, delivery_module._claim_next

    def slow_send(delivery, endpoint):
        if endpoint.url.endswith("/slow"):
            time.sleep(0.5)
        return send(delivery, endpoint)

    asked: list[int] = []

    def failing_once(*args, **kwargs):
        asked.append(1)
        if len(asked) == 2:  # after /fine came back, while /slow is in flight
            raise OperationalError("server closed the connection unexpectedly")
        return claim_next(*args, **kwargs)

    monkeypatch.setattr(delivery_module, "_send", slow_send)
    monkeypatch.setattr(delivery_module, "_claim_next", failing_once)
    result = deliver()
    assert (result.succeeded, result.errors) == (2, 1)
    assert set(WebhookDelivery.objects.values_list("status", "attempts")) == {("succeeded", 1)}
    monkeypatch.setattr(delivery_module, "_claim_next", claim_next)
    deliver(now=timezone.now() + delivery_module.CLAIM + timedelta(minutes=1))
    assert sorted(r.path for r in receiver.requests) == ["/fine", "/slow"]  # once each


def test_senders_never_use_the_database(receiver, project, make_endpoint, make_flag, monkeypatch):
    """Claims and records are the run's own thread's: a sender thread opens no connection."""
    make_endpoint(project, receiver.url("/a"))
    make_endpoint(project, receiver.url("/b"), format="slack")
    make_flag(project)
    send = delivery_module._send
    connected: list[bool] = []

    def watched(delivery, endpoint):
        outcome = send(delivery, endpoint)
        connected.append(connections["default"].connection is not None)
        return outcome

    monkeypatch.setattr(delivery_module, "_send", watched)
    assert deliver().succeeded == 2
    assert connected == [False, False]


def test_one_persons_projects_cannot_together_take_every_sender(
    receiver, make_endpoint, make_user, make_project, make_flag, monkeypatch, silent_url
):
    """A person may make up to 100 projects (accounts.services.MAX_PROJECTS_PER_PERSON),
    each within PER_PROJECT: four of them, two silent endpoints each with alerts waiting,
    held all 8 senders for a whole attempt, run after run while their backlog lasted (it
    is older than any new alert, and refilled by acknowledging an alert a minute), and
    every other tenant's alerts waited behind them. The endpoints one person made now
    share one PER_PERSON between them, whichever projects they are in."""
    monkeypatch.setattr("webhooks.transport.TIMEOUT", 2.0)
    monkeypatch.setattr(delivery_module, "RUN_BUDGET_SECONDS", 1.0)
    # Their endpoints fill the first batch the query reads (they may be 1,000).
    monkeypatch.setattr(delivery_module, "BATCH", 3)
    hostile = make_user(email="hostile@example.com")
    long_ago = timezone.now() - timedelta(hours=1)
    for n in range(4):
        theirs = make_project(hostile, name=f"Hostile {n}")
        for _ in range(PER_PROJECT):
            endpoint, _ = make_endpoint(theirs, silent_url())
            _backlog(endpoint, 50, long_ago)
    victim = make_project(make_user(), name="Victim")
    make_endpoint(victim, receiver.url("/fine"))
    make_flag(victim)
    started = time.monotonic()
    result = deliver()
    assert [r.path for r in receiver.requests] == ["/fine"]
    assert receiver.requests[0].at - started < 1.5  # not after a timeout
    assert result.succeeded == 1
    tried = WebhookDelivery.objects.filter(endpoint__created_by=hostile, attempts=1)
    assert tried.count() == PER_PERSON  # the budget ran out before a second wave
