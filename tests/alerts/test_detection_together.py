"""Two kinds of sign on one key at once: a new network, agents it never called, calls far
over its usual. Each alone is medium (a new server, a new feature, a busy day) and emails
nobody; two of them on one key within the hour are a strong sign of a leak, and its people
hear of it as of any high alert: once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from alerts.models import Flag
from apikeys.models import ApiKey
from tests.alerts.test_detection import NOW, call, run, steady
from usage.writer import usage_write
from webhooks.delivery import DeliveryResult, enqueue_alerts
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_create

LEAK_IP = "198.51.100.7"


@pytest.fixture
def key(api_key) -> ApiKey:
    key, _ = api_key
    ApiKey.objects.filter(pk=key.pk).update(created_at=NOW - timedelta(days=30))
    key.refresh_from_db()
    return key


def leak(key) -> list:
    """150 calls in the last hour from a network the key never used: a new network, and a
    spike over its six calls an hour."""
    start = NOW - timedelta(hours=1)
    return [call(key, start + timedelta(seconds=s * 20), ip=LEAK_IP) for s in range(150)]


def test_a_new_network_and_a_spike_on_one_key_within_the_hour_are_one_high_alert_emailed_once(
    key, user
):
    usage_write(steady(key, days=2))
    assert run() == []
    usage_write(leak(key))
    flags = {f.kind: f for f in run()}
    assert set(flags) == {Flag.Kind.NEW_NETWORK, Flag.Kind.VOLUME_SPIKE, Flag.Kind.SIGNS_TOGETHER}
    # Each sign stays what it is alone; the alert that says they came together is high.
    assert flags[Flag.Kind.NEW_NETWORK].severity == Flag.Severity.MEDIUM
    assert flags[Flag.Kind.VOLUME_SPIKE].severity == Flag.Severity.MEDIUM
    together = flags[Flag.Kind.SIGNS_TOGETHER]
    assert together.severity == Flag.Severity.HIGH and together.api_key == key
    assert "new network" in together.summary and "over its usual" in together.summary
    assert "may have leaked" in together.summary
    [message] = mail.outbox
    assert message.to == [user.email] and "may have leaked" in message.body

    # The leak goes on: the same alert, no second email.
    more = [call(key, NOW - timedelta(seconds=s), ip="198.51.100.8") for s in range(1, 40)]
    usage_write(more)
    flags = run()
    assert [f.kind for f in flags].count(Flag.Kind.SIGNS_TOGETHER) == 1
    assert len(mail.outbox) == 1


def test_signs_hours_apart_are_each_medium_and_email_nobody(key):
    """A new server set up in the morning and a busy afternoon are two ordinary events."""
    usage_write(steady(key, days=2))
    run()
    usage_write([call(key, NOW - timedelta(hours=5), ip=LEAK_IP)])
    run()
    start = NOW - timedelta(hours=1)
    usage_write([call(key, start + timedelta(seconds=s * 20)) for s in range(150)])
    kinds = {f.kind: f.severity for f in run()}
    assert kinds == {
        Flag.Kind.NEW_NETWORK: Flag.Severity.MEDIUM,
        Flag.Kind.VOLUME_SPIKE: Flag.Severity.MEDIUM,
    }
    assert mail.outbox == []


def test_two_signs_together_reach_a_webhook_that_takes_only_high_alerts(
    key, project, user, settings
):
    settings.WEBHOOKS_ALLOW_HTTP = True
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    endpoint, _ = webhook_create(
        project=project,
        url="http://127.0.0.1:9/hook",
        format="generic",
        min_severity="high",
        created_by=user,
    )
    usage_write(steady(key, days=2))
    run()
    usage_write(leak(key))
    run()
    enqueue_alerts(now=timezone.now(), result=DeliveryResult())
    [delivery] = WebhookDelivery.objects.filter(endpoint=endpoint)
    assert delivery.flag.kind == Flag.Kind.SIGNS_TOGETHER


def test_three_signs_on_a_key_at_its_longest_name_keep_the_whole_advice(key):
    """The name is cut short with "…" where the whole would not fit, never the advice."""
    ApiKey.objects.filter(pk=key.pk).update(name="n" * 100)
    usage_write(steady(key, days=2))
    run()
    usage_write([*leak(key), call(key, NOW - timedelta(minutes=1), ip=LEAK_IP, agent="export-all")])
    [together] = [f for f in run() if f.kind == Flag.Kind.SIGNS_TOGETHER]
    assert together.evidence["kinds"] == ["new_network", "new_agent", "volume_spike"]
    assert len(together.summary) <= 300 and together.summary.endswith("revoke it.")
    assert f"n…” ({key.hint})" in together.summary


def test_a_key_whose_new_network_alert_turns_high_with_a_spike_is_emailed_once(key, user):
    """Five new networks make the new-network alert high and emailed already: an alert
    saying that it came with a spike would be a second high alert, a second email."""
    from alerts.detection import NEW_NETWORKS_HIGH

    usage_write(steady(key, days=2))
    run()
    start = NOW - timedelta(hours=1)
    usage_write([call(key, start + timedelta(seconds=s * 20)) for s in range(150)])
    assert [f.kind for f in run()] == [Flag.Kind.VOLUME_SPIKE]  # from its own servers
    ips = [f"198.51.{n}.7" for n in range(NEW_NETWORKS_HIGH)]
    usage_write([call(key, NOW - timedelta(minutes=5), ip=ip) for ip in ips])
    kinds = {f.kind: f.severity for f in run()}
    assert kinds == {
        Flag.Kind.NEW_NETWORK: Flag.Severity.HIGH,
        Flag.Kind.VOLUME_SPIKE: Flag.Severity.MEDIUM,
    }
    assert len(mail.outbox) == 1


@pytest.mark.parametrize(
    "odd",
    [{"kinds": 5, "alerts": 7}, {"kinds": "new_network"}, {"alerts": ["x", 1]}, "a string"],
    ids=repr,
)
def test_a_signs_together_alert_edited_by_hand_still_takes_the_next_sign(key, odd):
    """The key's open signs-together alert says which kinds of sign it has seen, from its
    evidence. A row edited by hand or restored with a number there, ids that are not all
    numbers, or no JSON object at all, raised: the key's check failed on every run, and a
    third kind of sign was never added to the alert."""
    from django.db.models import JSONField, Value

    from alerts.detection import detect

    usage_write(steady(key, days=2))
    run()
    usage_write(leak(key))
    run()
    together = Flag.objects.get(kind=Flag.Kind.SIGNS_TOGETHER)
    stored = {**together.evidence, **odd} if isinstance(odd, dict) else odd
    Flag.objects.filter(pk=together.pk).update(evidence=Value(stored, JSONField()))

    usage_write([call(key, NOW - timedelta(seconds=30), agent="payroll-admin")])
    result = detect(now=NOW + timedelta(minutes=1))

    assert result.failures == 0
    together = Flag.objects.get(kind=Flag.Kind.SIGNS_TOGETHER)
    assert Flag.Kind.NEW_AGENT in together.evidence["kinds"]
    assert "called agents" in together.summary
