"""deliver(): each alert enqueued once per endpoint, sent signed, retried with backoff,
and one endpoint's trouble never stops another's delivery."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from tests.conftest import run_together
from webhooks import addresses
from webhooks import delivery as delivery_module
from webhooks.delivery import (
    BACKOFF,
    DeliveryResult,
    attempt,
    deliver,
    enqueue_alerts,
    next_attempt_after,
)
from webhooks.models import WebhookDelivery
from webhooks.services import delivery_retry_now, webhook_disable, webhook_send_test
from webhooks.transport import Outcome

from .test_signing import verify


def _url(name, project, **kwargs):
    return reverse(f"webhooks:{name}", kwargs={"slug": project.slug, **kwargs})


def test_an_alert_is_delivered_signed_end_to_end(
    receiver, project, api_key, make_endpoint, make_flag
):
    endpoint, secret = make_endpoint(project, receiver.url("/hook?token=abc"))
    flag = make_flag(project, api_key[0], summary="Revoked key tried")
    result = deliver()
    assert (result.enqueued, result.succeeded, result.failed) == (1, 1, 0)
    [got] = receiver.requests
    assert got.path == "/hook?token=abc"
    assert verify(secret, got.headers["Reminix-Signature"], got.body)
    assert got.headers["User-Agent"] == "Reminix-Webhooks/1"
    assert got.headers["Content-Type"] == "application/json"
    event = json.loads(got.body)
    assert got.headers["Reminix-Event-Id"] == event["id"] and event["id"].startswith("evt_")
    assert event["type"] == "alert.raised" and event["createdAt"].endswith("Z")
    assert event["project"] == {"slug": project.slug, "name": project.name}
    alert = event["alert"]
    assert alert["id"] == flag.pk and alert["severity"] == "high"
    assert alert["key"] == {"type": "api_key", "name": api_key[0].name, "hint": api_key[0].hint}
    assert api_key[1] not in got.body.decode()
    assert alert["url"].endswith(f"/projects/{project.slug}/alerts/#flag-{flag.pk}")
    sent = WebhookDelivery.objects.get()
    assert sent.status == "succeeded" and sent.attempts == 1 and sent.last_status_code == 204
    # Nothing new: the next run sends nothing.
    assert deliver().enqueued == 0 and len(receiver.requests) == 1


def test_slack_endpoints_get_a_message_with_a_timestamp_and_no_signature(
    receiver, project, make_endpoint, make_flag
):
    make_endpoint(project, receiver.url(), format="slack")
    make_flag(project, summary="Key <!channel> tried")
    deliver()
    [got] = receiver.requests
    body = json.loads(got.body)
    assert "Reminix-Signature" not in got.headers and got.headers["Reminix-Timestamp"].isdigit()
    assert set(body) == {"text", "blocks"} and "<!channel>" not in got.body.decode()


def test_a_new_network_alert_in_slack_counts_networks_as_the_alerts_page_does(
    receiver, project, api_key, make_endpoint, make_flag
):
    """Its occurrences are the networks it counts, "or more" once calls were passed over
    (the Alerts page's "× 12 or more"); Slack said "Seen 12 times". Other kinds still say
    how many times they were seen."""
    from alerts.models import Flag

    make_endpoint(project, receiver.url(), format="slack")
    make_flag(
        project,
        api_key[0],
        kind=Flag.Kind.NEW_NETWORK,
        occurrences=12,
        evidence={"network": "192.0.2.0/24", "networks": ["192.0.2.0/24"], "count": 12,
                  "at_least": True},
    )  # fmt: skip
    make_flag(project, api_key[0], kind=Flag.Kind.NEW_NETWORK, occurrences=1,
              evidence={"network": "192.0.2.0/24", "count": 1})  # fmt: skip
    make_flag(project, api_key[0], occurrences=3)
    deliver()

    lines = [json.loads(got.body)["blocks"][1]["text"]["text"] for got in receiver.requests]
    counts = sorted(line.split("\n")[-2].split(", last at")[0] for line in lines)
    assert counts == ["1 new network", "12 or more new networks", "Seen 3 times"]


def test_the_generic_event_says_whether_an_alerts_occurrences_are_a_lower_bound(
    receiver, project, api_key, make_endpoint, make_flag
):
    from alerts.models import Flag

    make_endpoint(project, receiver.url())
    make_flag(project, api_key[0], kind=Flag.Kind.NEW_NETWORK, occurrences=12,
              evidence={"network": "192.0.2.0/24", "count": 12, "at_least": True})  # fmt: skip
    make_flag(project, api_key[0], occurrences=3)
    deliver()

    alerts = [json.loads(got.body)["alert"] for got in receiver.requests]
    assert sorted((a["occurrences"], a["occurrencesAtLeast"]) for a in alerts) == [
        (3, False), (12, True)
    ]  # fmt: skip


def test_only_alerts_raised_after_the_endpoint_was_added_at_its_severity_are_sent(
    receiver, project, make_endpoint, make_flag
):
    before = make_flag(project)
    before.created_at = timezone.now() - timedelta(minutes=5)
    before.save()
    endpoint, _ = make_endpoint(project, receiver.url(), min_severity="medium")
    make_flag(project, severity="low")
    medium = make_flag(project, severity="medium")
    deliver()
    assert list(WebhookDelivery.objects.values_list("flag_id", flat=True)) == [medium.pk]


def test_a_failed_delivery_is_retried_with_backoff_then_given_up(
    receiver, project, make_endpoint, make_flag
):
    receiver.status = 500
    make_endpoint(project, receiver.url())
    make_flag(project)
    now = timezone.now()
    deliver(now=now)
    row = WebhookDelivery.objects.get()
    assert row.status == "failed" and row.attempts == 1 and row.last_status_code == 500
    assert row.last_error.startswith("HTTP 500") and "\n" not in row.last_error
    assert row.next_attempt_at == now + timedelta(minutes=1)
    # Not due yet: nothing is sent.
    deliver(now=now + timedelta(seconds=30))
    assert len(receiver.requests) == 1
    moment = now
    for waited in BACKOFF:
        moment += waited
        deliver(now=moment)
    row.refresh_from_db()
    assert row.status == "gave_up" and row.attempts == 6 and row.next_attempt_at is None
    assert len(receiver.requests) == 6


def test_the_backoff_schedule():
    now = timezone.now()
    waits = [next_attempt_after(n, now) for n in range(1, 7)]
    assert [w - now for w in waits[:5]] == [
        timedelta(minutes=1),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=6),
    ]
    assert waits[5] is None


def test_each_alert_is_enqueued_once_per_endpoint_across_runs(
    receiver, project, make_endpoint, make_flag
):
    endpoint, _ = make_endpoint(project, receiver.url())
    make_flag(project)
    now = timezone.now()
    for _ in range(3):
        enqueue_alerts(now=now, result=DeliveryResult())
    assert WebhookDelivery.objects.count() == 1
    row = WebhookDelivery.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        WebhookDelivery.objects.create(
            endpoint=endpoint,
            flag=row.flag,
            event_id="evt_x",
            event_type="alert.raised",
            payload={},
        )


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_enqueue_each_alert_once(
    receiver, project, make_endpoint, make_flag, monkeypatch
):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: concurrency is shown on PostgreSQL.")
    make_endpoint(project, receiver.url())
    for _ in range(20):
        make_flag(project)
    # Both runs read "not yet enqueued" before either inserts.
    barrier = threading.Barrier(2)
    original = WebhookDelivery.objects.bulk_create

    def bulk_create_together(*args, **kwargs):
        barrier.wait(timeout=10)
        return original(*args, **kwargs)

    monkeypatch.setattr(WebhookDelivery.objects, "bulk_create", bulk_create_together)
    results = [DeliveryResult(), DeliveryResult()]

    run_together(*(partial(enqueue_alerts, now=timezone.now(), result=r) for r in results))
    assert [r.enqueued for r in results] == [20, 20]  # both tried
    assert [r.errors for r in results] == [0, 0]
    assert WebhookDelivery.objects.count() == 20


def test_one_endpoint_timing_out_or_raising_does_not_stop_other_tenants(
    receiver, project, make_endpoint, make_flag, make_user, make_project, monkeypatch, silent_url
):
    other_owner = make_user()
    other = make_project(other_owner)
    third = make_project(make_user(), name="Third")
    make_endpoint(project, silent_url("/slow"))
    make_endpoint(third, receiver.url("/raises"))
    make_endpoint(other, receiver.url("/fine"))
    for p in (project, third, other):
        make_flag(p)
    real_send = delivery_module._send

    def send(delivery, endpoint):
        if endpoint.url.endswith("/raises"):
            raise RuntimeError("boom")
        return real_send(delivery, endpoint)

    monkeypatch.setattr(delivery_module, "_send", send)
    monkeypatch.setattr("webhooks.transport.TIMEOUT", 0.5)
    started = time.monotonic()
    result = deliver()
    assert time.monotonic() - started < 10
    assert (result.succeeded, result.failed) == (1, 2)
    by_path = {d.endpoint.url.rsplit("/", 1)[1]: d for d in WebhookDelivery.objects.all()}
    assert by_path["fine"].status == "succeeded"
    assert by_path["slow"].status == "failed" and "No answer" in by_path["slow"].last_error
    assert by_path["raises"].status == "failed"
    assert by_path["raises"].last_error == "Unexpected error: RuntimeError"
    assert [r.path for r in receiver.requests] == ["/fine"]


def test_endpoints_that_never_answer_cost_a_run_one_timeout_not_one_each(
    receiver, make_endpoint, make_flag, make_user, make_project, monkeypatch, silent_url
):
    """Three projects' endpoints accept the connection and never answer. A fourth
    project's alert, raised last, goes out at once; the run lasts one timeout, not three."""
    monkeypatch.setattr("webhooks.transport.TIMEOUT", 2.0)
    for n in range(3):
        silent = make_project(make_user(), name=f"Silent {n}")
        make_endpoint(silent, silent_url())
        make_flag(silent)
    fine = make_project(make_user(), name="Fine")
    fine_endpoint, _ = make_endpoint(fine, receiver.url("/fine"))
    make_flag(fine)
    started = time.monotonic()
    result = deliver()
    took = time.monotonic() - started
    assert (result.succeeded, result.failed) == (1, 3)
    assert [r.path for r in receiver.requests] == ["/fine"]
    assert receiver.requests[0].at - started < 1.5  # not behind the silent ones
    assert 2.0 <= took < 4.0  # one 2 s timeout, the three at once (one by one: 6 s)
    silent_rows = WebhookDelivery.objects.exclude(endpoint=fine_endpoint)
    assert {(d.status, d.last_error) for d in silent_rows} == {
        ("failed", "No answer within 2 seconds.")
    }


def test_logs_name_the_host_only_never_the_path_query_or_secret(
    receiver, project, make_endpoint, make_flag, caplog
):
    receiver.status = 500
    _, secret = make_endpoint(project, receiver.url("/services/T000/B000/XXXXSECRET?k=v"))
    make_flag(project)
    deliver()
    logged = caplog.text
    assert "127.0.0.1" in logged
    assert "XXXXSECRET" not in logged and "k=v" not in logged and secret not in logged


@pytest.mark.parametrize(
    "path", ["/services/T000/B000/XXXXSECRET?k=v", "/hooks/%58%58%58%58SECRET?k=v"]
)
def test_an_answer_that_echoes_the_address_keeps_its_path_and_query_out_of_log_and_row(
    receiver, project, make_endpoint, make_flag, caplog, path
):
    """A far end that does not know the path answers, as Express and many others do,
    "Cannot POST /services/T000/B000/XXXXSECRET": the excerpt of its answer that the log
    line and the delivery's row keep carried the address's secret path with it."""
    receiver.status = 404
    receiver.echo_path = True
    make_endpoint(project, receiver.url(path))
    make_flag(project)
    deliver()
    row = WebhookDelivery.objects.get()
    assert row.last_error.startswith("HTTP 404: Cannot POST")
    for kept in (caplog.text, row.last_error):
        assert "SECRET" not in kept and "k=v" not in kept


def test_an_answer_that_quotes_a_token_keeps_it_out_of_log_and_row(
    receiver, project, make_endpoint, make_flag, api_key, caplog
):
    """A far end answering an error that quotes a Reminix token (a customer's service
    that logs the key it was configured with, and shows its log; one echoing what anyone
    sent it): the excerpt of its answer went into the log record and the delivery's row,
    which the delivery log shows every member of the project, the token whole. A token is
    never written to a log or a later page (shared/CONTRACT.md)."""
    token = api_key[1]
    receiver.status = 500
    receiver.answer = f"Unauthorized: bad Reminix key {token}".encode()
    make_endpoint(project, receiver.url())
    make_flag(project)
    deliver()
    row = WebhookDelivery.objects.get()
    assert row.last_error.startswith("HTTP 500: Unauthorized: bad Reminix key reminix_sk_")
    logged = "".join(r.getMessage() for r in caplog.records)
    for kept in (logged, row.last_error):
        assert token not in kept and token[11:30] not in kept


def test_a_redirect_is_not_followed(receiver, project, make_endpoint, make_flag):
    receiver.status = 302
    make_endpoint(project, receiver.url())
    make_flag(project)
    deliver()
    row = WebhookDelivery.objects.get()
    assert row.status == "failed" and "redirects are not followed" in row.last_error


def test_send_test_and_retry_now_queue_for_the_next_run_and_send_nothing_themselves(
    receiver, project, user, make_endpoint
):
    endpoint, secret = make_endpoint(project, receiver.url())
    receiver.status = 503
    delivery = webhook_send_test(endpoint=endpoint, by=user)
    assert delivery.status == "pending" and delivery.next_attempt_at <= timezone.now()
    assert receiver.requests == []  # nothing leaves inside the owner's request
    result = deliver()
    assert (result.enqueued, result.succeeded, result.failed) == (0, 0, 1)
    delivery.refresh_from_db()
    # A test is tried once: it is not retried on its own, only by Retry now.
    assert delivery.status == "gave_up" and delivery.attempts == 1
    assert delivery.next_attempt_at is None
    assert json.loads(receiver.requests[0].body)["type"] == "webhook.test"

    receiver.status = 200
    assert delivery_retry_now(delivery=delivery) is True
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery_retry_now(delivery=delivery) is False  # already queued: nothing changes
    assert len(receiver.requests) == 1
    assert deliver().succeeded == 1
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.attempts == 2
    assert verify(
        secret, receiver.requests[1].headers["Reminix-Signature"], receiver.requests[1].body
    )
    assert receiver.requests[0].headers["Reminix-Event-Id"] == delivery.event_id
    assert delivery_retry_now(delivery=delivery) is False  # delivered: never sent again


def test_retry_now_gives_a_delivery_that_gave_up_one_more_attempt(
    receiver, project, user, make_endpoint
):
    endpoint, _ = make_endpoint(project, receiver.url())
    receiver.status = 500
    delivery = webhook_send_test(endpoint=endpoint, by=user)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status="gave_up", attempts=len(BACKOFF) + 1, next_attempt_at=None
    )
    assert delivery_retry_now(delivery=delivery) is True
    deliver()
    delivery.refresh_from_db()
    assert delivery.status == "gave_up" and delivery.attempts == len(BACKOFF) + 2
    assert delivery.next_attempt_at is None and len(receiver.requests) == 1


def test_a_delivery_retried_past_a_small_integers_attempts_is_still_recorded(
    receiver, project, user, make_endpoint
):
    """Each Retry now of a delivery that gave up adds an attempt, with no end: attempts
    were a small integer, and the 32,768th failed the run's write on PostgreSQL."""
    endpoint, _ = make_endpoint(project, receiver.url())
    receiver.status = 500
    delivery = webhook_send_test(endpoint=endpoint, by=user)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status="gave_up", attempts=2**15 - 1, next_attempt_at=None
    )
    assert delivery_retry_now(delivery=delivery) is True
    deliver()
    delivery.refresh_from_db()
    assert delivery.status == "gave_up" and delivery.attempts == 2**15
    assert len(receiver.requests) == 1


def test_a_disabled_endpoint_gets_nothing(receiver, project, user, make_endpoint, make_flag):
    endpoint, _ = make_endpoint(project, receiver.url())
    webhook_disable(endpoint=endpoint, by=user)
    make_flag(project)
    deliver()
    assert receiver.requests == [] and WebhookDelivery.objects.count() == 0


def test_the_command_runs_and_reports(receiver, project, make_endpoint, make_flag, capsys):
    make_endpoint(project, receiver.url())
    make_flag(project)
    call_command("deliver_webhooks")
    assert "Enqueued 1 deliveries; 1 delivered, 0 failed." in capsys.readouterr().out
    call_command("deliver_webhooks")
    assert capsys.readouterr().out == ""  # nothing due: nothing for cron to mail
    call_command("deliver_webhooks", verbosity=2)
    assert "Enqueued 0 deliveries; 0 delivered, 0 failed." in capsys.readouterr().out


def test_one_owner_queueing_tests_cannot_hold_back_another_projects_alert(
    signed_in, project, make_endpoint, make_user, make_project, make_flag, monkeypatch
):
    """An owner (or a script with their session) clicks Send test 100 times on an endpoint
    that takes its full 15 s to answer. Another project's alert, raised just after, should
    still go out within a couple of runs."""
    slow, _ = make_endpoint(project, "https://slow.example.com/hook")
    other = make_project(make_user())
    theirs, _ = make_endpoint(other, "https://theirs.example.com/hook")
    for _ in range(100):
        assert signed_in.post(_url("webhook_test", project, endpoint_id=slow.pk)).status_code == 302
    # One test waits at a time, however often someone clicks.
    assert WebhookDelivery.objects.filter(endpoint=slow, status="pending").count() == 1
    make_flag(other)

    clock = SimpleNamespace(now=0.0)
    sent_to: list[int] = []

    def send(delivery, endpoint):
        sent_to.append(endpoint.pk)
        clock.now += 15.0  # transport.TOTAL: a far end that trickles its answer
        if endpoint.pk == slow.pk:
            return Outcome(None, "No complete answer within 15 seconds.")
        return Outcome(204)

    monkeypatch.setattr(delivery_module, "_send", send)
    monkeypatch.setattr(
        delivery_module, "time", SimpleNamespace(monotonic=lambda: clock.now, time=time.time)
    )
    for _run in range(5):  # five scheduler runs: about five minutes of the one sender
        deliver()
    assert theirs.pk in sent_to, f"{len(sent_to)} sends, all to the slow endpoint"


def test_retry_now_while_a_run_is_sending_it_does_not_send_it_twice(
    project, make_endpoint, make_flag, monkeypatch
):
    """A claimed delivery is sent by no other run or button meanwhile: Retry now on a
    failed delivery that a run has just claimed leaves the claim alone, so a second sender
    (cron beside the scheduler, a manual deliver_webhooks, a second scheduler whose lease
    expired) does not send it again while the first is in flight."""
    endpoint, _ = make_endpoint(project, "https://hooks.example.com/hook")
    make_flag(project)
    delivery_module.enqueue_alerts(
        now=delivery_module.timezone.now(), result=delivery_module.DeliveryResult()
    )
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.FAILED, attempts=1
    )

    sends: list[int] = []
    second: list[Outcome | None] = []  # what the other sender got

    def send(d, e):
        sends.append(d.pk)
        if len(sends) == 1:
            # While the first run's POST is in flight: the owner clicks Retry now, and
            # another sender looks for due deliveries.
            delivery_retry_now(delivery=WebhookDelivery.objects.get(pk=d.pk))
            second.append(attempt(d.pk))
        return Outcome(204)

    monkeypatch.setattr(delivery_module, "_send", send)
    attempt(delivery.pk)
    assert len(sends) == 1 and second == [None]
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.attempts == 2


def test_an_endpoint_that_fails_gets_no_more_tries_in_that_run(
    receiver, project, make_endpoint, make_user, make_project, make_flag
):
    broken, _ = make_endpoint(project, receiver.url("/broken"))
    for _ in range(3):
        make_flag(project)
    other = make_project(make_user())
    fine, _ = make_endpoint(other, receiver.url("/fine"))
    make_flag(other)
    receiver.statuses["/broken"] = 500
    result = deliver()
    assert (result.enqueued, result.succeeded, result.failed) == (4, 1, 1)
    assert [r.path for r in receiver.requests].count("/broken") == 1
    waiting = WebhookDelivery.objects.filter(endpoint=broken, status="pending")
    assert waiting.count() == 2  # they wait for the next run, not behind the broken one


def test_a_claim_shows_as_sending_and_a_lapsed_one_is_due_again(
    project, make_endpoint, user, monkeypatch
):
    endpoint, _ = make_endpoint(project, "https://hooks.example.com/hook")
    delivery = webhook_send_test(endpoint=endpoint, by=user)
    assert delivery is not None
    assert webhook_send_test(endpoint=endpoint, by=user) is None  # one test waits at a time
    seen: list[tuple[str, bool, bool, bool]] = []

    def send(d, e):
        # While attempt() sends it: what its claim left on the row.
        row = WebhookDelivery.objects.get(pk=d.pk)
        now = timezone.now()
        lapsed = row.next_attempt_at + timedelta(seconds=1)  # had its sender died
        seen.append(
            (
                row.status,
                WebhookDelivery.objects.due(now).filter(pk=d.pk).exists(),
                webhook_send_test(endpoint=endpoint, by=user) is None,  # still waiting
                WebhookDelivery.objects.due(lapsed).filter(pk=d.pk).exists(),
            )
        )
        return Outcome(204)

    monkeypatch.setattr(delivery_module, "_send", send)
    assert attempt(delivery.pk) == Outcome(204)
    assert seen == [("sending", False, True, True)]


def test_a_run_with_nothing_new_costs_the_same_for_any_number_of_endpoints(
    project, make_endpoint, make_user, make_project, make_flag
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_of_a_run() -> int:
        with CaptureQueriesContext(connection) as run:
            deliver()
        return len(run.captured_queries)

    make_endpoint(project, "https://hooks.example.com/one")
    one = queries_of_a_run()
    for n in range(20):
        make_endpoint(make_project(make_user()), f"https://hooks.example.com/{n}")
    assert queries_of_a_run() == one
    make_flag(project)  # an alert in one project: that project's endpoint is looked at
    assert deliver().enqueued == 1


def test_a_token_whose_unused_json_cannot_be_read_costs_none_of_its_projects_alerts(
    receiver, project, api_key, make_endpoint, make_flag
):
    """Enqueueing loaded the whole rows of each alert's key and client token: one whose
    context or scopes hold JSON Python cannot read back (a number past int()'s 4,300
    digits, put there by hand or by a restore) failed the endpoint's enqueue, and with it
    every alert of the project, on every run. An alert reads no token's JSON."""
    from apikeys.models import ApiKey, ClientToken
    from apikeys.services import client_token_create

    key, _ = api_key
    token, _ = client_token_create(project=project, context={}, api_key=key)
    unreadable = "[" + "7" * 5000 + "]"
    with connection.cursor() as cursor:
        # An object, as the database holds a context to (apikeys/migrations/0033).
        cursor.execute(
            f"UPDATE {ClientToken._meta.db_table} SET context = %s WHERE id = %s",  # noqa: S608
            ['{"n": ' + unreadable + "}", token.pk],
        )
        cursor.execute(
            f"UPDATE {ApiKey._meta.db_table} SET agent_names = %s WHERE id = %s",  # noqa: S608
            [unreadable, key.pk],
        )
    make_endpoint(project, receiver.url())
    make_flag(project, api_key=key)
    make_flag(project, api_key=key, client_token=token)

    result = deliver()

    assert (result.enqueued, result.succeeded, result.errors) == (2, 2, 0)
    assert len(receiver.requests) == 2


@pytest.fixture
def stalled_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Hosts named stalls…: their DNS servers never answer (until the event is set), as
    a hostile owner's can. Other hosts resolve as usual. Each attempt waits 0.2 s."""
    import socket

    released = threading.Event()
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host.startswith("stalls"):
            released.wait(10)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr("webhooks.transport.TIMEOUT", 0.2)
    yield released
    released.set()


def assert_another_project_still_delivers(
    receiver, make_endpoint, make_flag, make_user, make_project
):
    """A project no one else's DNS touches gets its alert delivered, and nothing else is sent."""
    fine = make_project(make_user(), name="Fine")
    make_endpoint(fine, receiver.url("/fine"))
    make_flag(fine)
    result = deliver()
    assert result.succeeded == 1, WebhookDelivery.objects.filter(
        endpoint__project=fine
    ).values_list("last_error", flat=True)
    assert [r.path for r in receiver.requests] == ["/fine"]


def test_one_projects_unanswered_dns_lookups_cannot_stop_every_other_projects_alerts(
    receiver, make_endpoint, make_flag, make_user, make_project, stalled_dns, monkeypatch
):
    """A lookup given up on keeps its thread until the resolver ends it, and past
    MAX_LOOKUPS_UNANSWERED of them no lookup is started: an owner whose endpoints name
    hosts whose DNS servers never answer used them all, and every other project's
    deliveries then failed with "Too many DNS lookups" (and gave up after the last
    retry). A project's unanswered lookups now stop at its own share."""
    monkeypatch.setattr(addresses, "MAX_LOOKUPS_UNANSWERED", 3)
    monkeypatch.setattr(addresses, "MAX_LOOKUPS_UNANSWERED_PER_PROJECT", 2)
    try:
        hostile = make_project(make_user(), name="Hostile")
        for n in range(3):
            make_endpoint(hostile, f"https://stalls-{n}.example.com/hook")
        make_flag(hostile)
        assert deliver().failed == 3
        hostile_errors = sorted(d.last_error for d in WebhookDelivery.objects.all())

        assert_another_project_still_delivers(
            receiver, make_endpoint, make_flag, make_user, make_project
        )
        assert hostile_errors[0].startswith("DNS lookup: no answer")
        assert "this project's" in hostile_errors[2]
    finally:
        stalled_dns.set()


def test_a_delivery_refused_for_want_of_a_dns_lookup_costs_it_no_attempt(
    receiver, make_endpoint, make_flag, make_user, make_project, stalled_dns, monkeypatch
):
    """Past MAX_LOOKUPS_UNANSWERED (other projects' lookups, given up on and still
    running) a delivery is refused before anything is sent. That was counted as one of
    its six attempts, so while others held the lookups an alert gave up without ever
    being tried. It waits a minute instead, its attempts as they were."""
    monkeypatch.setattr(addresses, "MAX_LOOKUPS_UNANSWERED", 1)
    try:
        stalling = make_project(make_user(), name="Stalling")
        make_endpoint(stalling, "https://stalls.example.com/hook")
        make_flag(stalling)
        deliver()
        fine = make_project(make_user(), name="Fine")
        fine_endpoint, _ = make_endpoint(fine, receiver.url("/fine"))
        make_flag(fine)
        now = timezone.now()
        deliver(now=now)
        waiting = WebhookDelivery.objects.get(endpoint=fine_endpoint)
        assert waiting.attempts == 0 and "DNS lookups" in waiting.last_error
        assert waiting.next_attempt_at == now + BACKOFF[0]
        assert waiting.status == "pending"
    finally:
        stalled_dns.set()
    monkeypatch.setattr(addresses, "MAX_LOOKUPS_UNANSWERED", 32)  # (the stalled one retries)
    deliver(now=now + BACKOFF[0])
    sent = WebhookDelivery.objects.get(endpoint=fine_endpoint)
    assert (sent.status, sent.attempts) == ("succeeded", 1)


def test_a_projects_endpoint_refused_for_its_projects_unanswered_lookups_costs_no_attempt(
    receiver, project, make_endpoint, make_flag, stalled_dns, monkeypatch
):
    """A project's share of the unanswered lookups (MAX_LOOKUPS_UNANSWERED_PER_PROJECT)
    can be filled by one of its endpoints whose DNS servers have stopped answering: its
    other endpoints, a Slack one that works, must not spend their retries meanwhile."""
    monkeypatch.setattr(addresses, "MAX_LOOKUPS_UNANSWERED_PER_PROJECT", 1)
    try:
        make_endpoint(project, "https://stalls.example.com/hook")
        make_flag(project)
        deliver()
        working, _ = make_endpoint(project, receiver.url("/fine"))
        make_flag(project)
        deliver()
        waiting = WebhookDelivery.objects.get(endpoint=working)
        assert (waiting.status, waiting.attempts) == ("pending", 0)
        assert "this project's DNS lookups" in waiting.last_error
    finally:
        stalled_dns.set()


def test_one_persons_projects_cannot_together_stop_every_other_projects_alerts(
    receiver, make_endpoint, make_flag, make_user, make_project, stalled_dns, monkeypatch
):
    """A project's share of the unanswered DNS lookups bounds one project, but a person
    may make up to 100 projects (accounts.services.MAX_PROJECTS_PER_PERSON), and a few of
    them, each within its share, used every lookup again. The endpoints one person made
    now have one share between them, whichever projects they are in."""
    monkeypatch.setattr(addresses, "MAX_LOOKUPS_UNANSWERED", 3)
    monkeypatch.setattr(addresses, "MAX_LOOKUPS_UNANSWERED_PER_PROJECT", 2)
    monkeypatch.setattr(addresses, "MAX_LOOKUPS_UNANSWERED_PER_PERSON", 2)
    try:
        hostile_person = make_user(email="hostile@example.com")
        for name in ("Hostile one", "Hostile two"):
            hostile = make_project(hostile_person, name=name)
            for n in range(2):
                make_endpoint(hostile, f"https://stalls-{name[-3:]}-{n}.example.com/hook")
            make_flag(hostile)
        assert deliver().failed == 4
        hostile_errors = sorted(d.last_error for d in WebhookDelivery.objects.all())

        assert_another_project_still_delivers(
            receiver, make_endpoint, make_flag, make_user, make_project
        )
        assert [e.startswith("DNS lookup: no answer") for e in hostile_errors] == [
            True,
            True,
            False,
            False,
        ]
    finally:
        stalled_dns.set()


def test_an_alert_first_seen_before_year_1000_is_sent_with_four_digits_of_year(api_key):
    """strftime's %Y writes year 1 as "1": an alert whose times its row holds from before
    year 1000 (a restore, an import) went out as "firstSeen": "1-01-01T00:30:00Z", no
    RFC 3339 time, which the receiver's parser refuses (and with it the whole delivery)."""
    from datetime import UTC, datetime

    from alerts.models import Flag
    from webhooks.payloads import alert_event

    key, _ = api_key
    first = datetime(1, 1, 1, 0, 30, tzinfo=UTC)
    flag = Flag.objects.create(
        project=key.project,
        api_key=key,
        kind=Flag.Kind.BLOCKED_NETWORK,
        severity=Flag.Severity.HIGH,
        dedupe_key="edge",
        summary="edge",
        first_seen=first,
        last_seen=datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC),
    )
    event = alert_event(event_id="evt_1", flag=flag, created_at=first)
    assert event["createdAt"] == event["alert"]["firstSeen"] == "0001-01-01T00:30:00Z"
    assert event["alert"]["lastSeen"] == "0999-12-31T23:59:59Z"
