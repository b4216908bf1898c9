"""An alert's evidence is a JSON object the detector writes; a row edited by hand or
restored may hold any JSON there. The alert is still listed, emailed and sent to webhooks,
and the project's other alerts with it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db.models import JSONField, Value
from django.urls import reverse
from django.utils import timezone

from alerts.detection import detect
from alerts.links import evidence_url
from alerts.models import Flag
from apikeys.models import ApiKey
from webhooks.delivery import DeliveryResult, enqueue_alerts
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_create

ODD_EVIDENCE = [None, [], ["network"], "a string", 7, True, {"count": "3"}, {"count": [1]}]


def _flag(project, key, summary: str) -> Flag:
    now = timezone.now()
    return Flag.objects.create(
        project=project,
        api_key=key,
        kind=Flag.Kind.NEW_NETWORK,
        severity=Flag.Severity.HIGH,
        dedupe_key=f"test:{summary}",
        summary=summary,
        evidence={"network": "198.51.100.0/24", "count": 1, "ips": ["198.51.100.7"]},
        first_seen=now,
        last_seen=now,
    )


@pytest.mark.parametrize("evidence", ODD_EVIDENCE, ids=repr)
def test_an_alert_whose_evidence_is_no_json_object_is_listed_mailed_and_sent(
    signed_in, project, api_key, user, settings, evidence
):
    """Every reader called .get() on it (or int() on its count): the project's Alerts page
    was a 500, the alert's email raised, and enqueueing for a webhook endpoint failed on
    each run, which held back every alert of the project for that endpoint."""
    settings.WEBHOOKS_ALLOW_HTTP = True
    key, _ = api_key
    webhook_create(
        project=project,
        url="https://hooks.example.com/reminix",
        format="generic",
        min_severity="low",
        created_by=user,
    )
    odd = _flag(project, key, "The odd one")
    Flag.objects.filter(pk=odd.pk).update(
        evidence=Value(None, JSONField()) if evidence is None else evidence
    )
    usual = _flag(project, key, "The usual one")

    page = signed_in.get(reverse("alerts:flag_list", kwargs={"slug": project.slug}))
    assert page.status_code == 200
    assert "The odd one" in page.content.decode() and "The usual one" in page.content.decode()

    result = DeliveryResult()
    enqueue_alerts(now=timezone.now(), result=result)
    assert (result.enqueued, result.errors) == (2, 0)
    assert set(WebhookDelivery.objects.values_list("flag_id", flat=True)) == {odd.pk, usual.pk}

    run = detect()
    assert run.failures == 0
    assert sorted(m.subject for m in mail.outbox if "odd" in m.body) == [
        f"[Reminix] Used from a new network in {project.name}"
    ]


@pytest.mark.parametrize("ips", [{"0": "198.51.100.7"}, "198.51.100.7", [None], [["198.51.100.7"]]])
def test_a_refused_network_alert_whose_addresses_are_no_list_is_listed_without_is_ours(
    signed_in, project, api_key, ips
):
    """The alert about a network a key's allowlist refused offers "this network is ours"
    for its first address; an object there (a row edited by hand) raised KeyError on the
    Alerts page. It is listed, without the button, and the button's POST changes nothing."""
    key, _ = api_key
    now = timezone.now()
    flag = Flag.objects.create(
        project=project,
        api_key=key,
        kind=Flag.Kind.BLOCKED_NETWORK,
        severity=Flag.Severity.HIGH,
        dedupe_key="test:refused",
        summary="Refused by the allowlist",
        evidence={"ips": ips},
        first_seen=now,
        last_seen=now,
    )
    page = signed_in.get(reverse("alerts:flag_list", kwargs={"slug": project.slug}))
    assert page.status_code == 200
    assert "Refused by the allowlist" in page.content.decode()
    assert flag.network_in_question() is None
    ours = reverse("alerts:flag_network_ours", kwargs={"slug": project.slug, "flag_id": flag.pk})
    assert signed_in.post(ours).status_code < 500
    key.refresh_from_db()
    assert key.allowed_networks == []


@pytest.mark.parametrize("evidence", [e for e in ODD_EVIDENCE if not isinstance(e, dict)], ids=repr)
def test_saving_an_alert_whose_evidence_could_not_be_read_keeps_what_the_row_holds(
    project, api_key, user, evidence
):
    """Evidence that is no JSON object is read as none ({}). Saved whole after that (an
    acknowledgement set on the flag and saved), the {} was written over what the row held,
    which was gone for whoever came to put it right. The rest of the flag is saved."""
    key, _ = api_key
    flag = _flag(project, key, "The odd one")
    stored = Value(None, JSONField()) if evidence is None else evidence
    Flag.objects.filter(pk=flag.pk).update(evidence=stored)

    read = Flag.objects.get(pk=flag.pk)
    assert read.evidence == {}
    read.acknowledged_at, read.acknowledged_by = timezone.now(), user
    read.save()

    kept = Flag.objects.filter(pk=flag.pk).values_list("evidence", "acknowledged_by")
    assert list(kept) == [(evidence, user.pk)]


def test_evidence_given_to_an_alert_whose_evidence_could_not_be_read_is_saved(project, api_key):
    """What a detector writes in its place (the merge of a finding into the open alert)
    is saved: only the {} read in place of what could not be read is never written."""
    key, _ = api_key
    flag = _flag(project, key, "The odd one")
    Flag.objects.filter(pk=flag.pk).update(evidence=["network"])

    read = Flag.objects.get(pk=flag.pk)
    read.evidence = {**read.evidence, "count": 2}
    read.save(update_fields=["evidence"])
    read.refresh_from_db()
    read.evidence["count"] = 3
    read.save()

    assert Flag.objects.values_list("evidence", flat=True).get(pk=flag.pk) == {"count": 3}


def test_a_new_network_alert_counting_true_is_no_alert_about_one_network(project, api_key):
    """`true` is an int in Python, and was read as a count of 1: an alert edited by hand
    to `"count": true` offered the one click that adds its network to the key's allowed
    networks, and its link showed that network's calls alone, where a count of "1" (no
    whole number) offers neither."""
    key, _ = api_key
    flag = _flag(project, key, "Counted true")
    Flag.objects.filter(pk=flag.pk).update(
        evidence={"network": "198.51.100.0/24", "count": True, "ips": ["198.51.100.7"]}
    )
    flag = Flag.objects.select_related("project").get(pk=flag.pk)

    assert flag.network_in_question() is None
    assert "ip=" not in evidence_url(flag)


@pytest.mark.parametrize("count", [True, "many", [3]], ids=repr)
def test_an_open_new_network_alert_whose_count_is_no_whole_number_counts_its_networks(
    api_key, count
):
    """A new network adds to the key's open alert's count: `true` was read as 1 (the alert
    listing three networks then said two), and a count that is no number raised, which
    failed the key's check on every run: its new networks were never added to it."""
    from tests.alerts.test_detection import NOW, call, run, steady
    from usage.writer import usage_write

    key, _ = api_key
    ApiKey.objects.filter(pk=key.pk).update(created_at=NOW - timedelta(days=30))
    usage_write(steady(key, days=2))
    usage_write([call(key, NOW - timedelta(minutes=9), ip="198.51.100.7")])
    [flag] = run()
    networks = ["198.51.100.0/24", "192.0.2.0/24", "203.0.114.0/24"]
    evidence = {**flag.evidence, "networks": networks, "count": count}
    Flag.objects.filter(pk=flag.pk).update(evidence=evidence)

    usage_write([call(key, NOW - timedelta(minutes=5), ip="233.252.0.9")])
    [flag] = run()

    assert flag.evidence["count"] == 4
    assert "4 networks" in flag.summary


@pytest.mark.parametrize(
    "odd",
    [
        {"networks": 5},
        {"networks": "abc"},
        {"networks": None, "network": 5},
        {"ips": 7},
        {"ips": "198.51.100.7"},
        {"memory_full": "all of them"},
        {"since": 5},
    ],
    ids=repr,
)
def test_an_open_new_network_alert_with_odd_evidence_still_takes_the_next_network(api_key, odd):
    """The detector adds a key's next new network to its open alert, from the alert's
    evidence. A row edited by hand with a number where a list was (or a name for the size
    of the key's memory) raised, which failed the key's check on every run: its new
    networks were never added. A string was read letter by letter, "a", "b" and "c" as
    networks the key was used from."""
    from tests.alerts.test_detection import NOW, call, run, steady
    from usage.writer import usage_write

    key, _ = api_key
    ApiKey.objects.filter(pk=key.pk).update(created_at=NOW - timedelta(days=30))
    usage_write(steady(key, days=2))
    usage_write([call(key, NOW - timedelta(minutes=9), ip="198.51.100.7")])
    [flag] = run()
    Flag.objects.filter(pk=flag.pk).update(evidence={**flag.evidence, **odd})

    usage_write([call(key, NOW - timedelta(minutes=5), ip="233.252.0.9")])
    result = detect(now=NOW + timedelta(minutes=1))
    flag = Flag.objects.get(pk=flag.pk)

    assert result.failures == 0
    assert flag.evidence["count"] == 2
    assert flag.evidence["networks"][-1] == "233.252.0.0/24"
    assert all("/" in network for network in flag.evidence["networks"])
    assert "233.252.0.9" in flag.evidence["ips"] and all("." in ip for ip in flag.evidence["ips"])
    assert isinstance(flag.evidence["since"], str)
    assert "2 networks" in flag.summary


@pytest.mark.parametrize("agents", [5, "abc", {"a": 1}], ids=repr)
def test_an_open_new_agent_alert_whose_agents_are_no_list_still_takes_the_next_agent(
    api_key, agents
):
    """As for networks: a number where the list of agents was raised on every run."""
    from tests.alerts.test_detection import NOW, call, run, steady
    from usage.writer import usage_write

    key, _ = api_key
    ApiKey.objects.filter(pk=key.pk).update(created_at=NOW - timedelta(days=30))
    usage_write(steady(key, days=2))
    usage_write([call(key, NOW - timedelta(minutes=9), agent="payroll-admin")])
    [flag] = run()
    Flag.objects.filter(pk=flag.pk).update(evidence={**flag.evidence, "agents": agents})

    usage_write([call(key, NOW - timedelta(minutes=5), agent="export-all")])
    result = detect(now=NOW + timedelta(minutes=1))
    flag = Flag.objects.get(pk=flag.pk)

    assert result.failures == 0
    assert flag.evidence["agents"] == ["export-all"]


@pytest.mark.parametrize(
    "odd",
    [{"since": 5}, {"since": "yesterday"}, {"hour_list": 5}, {"peak": "high"}, {"hours": "1"}],
    ids=repr,
)
def test_an_open_spike_alert_with_odd_evidence_still_takes_the_next_hour(api_key, odd):
    """As for networks: a key's open spike alert edited by hand with a number where its
    hours or its start were, or a start that is no time, raised on every run, and the
    spike's next hours were never added to it."""
    from tests.alerts.test_detection import NOW, call, steady
    from usage.writer import usage_write

    key, _ = api_key
    ApiKey.objects.filter(pk=key.pk).update(created_at=NOW - timedelta(days=30))
    usage_write(steady(key, days=2))
    start = NOW - timedelta(hours=2)
    results = []
    for hour in range(2):
        at = start + timedelta(hours=hour)
        usage_write([call(key, at + timedelta(seconds=10 * s)) for s in range(150)])
        results.append(detect(now=at + timedelta(minutes=30)))
        if hour == 0:
            [flag] = Flag.objects.filter(kind=Flag.Kind.VOLUME_SPIKE)
            Flag.objects.filter(pk=flag.pk).update(evidence={**flag.evidence, **odd})

    [flag] = Flag.objects.filter(kind=Flag.Kind.VOLUME_SPIKE)
    assert [r.failures for r in results] == [0, 0]
    assert flag.evidence["hours"] == 2
    assert "2 hours" in flag.summary
