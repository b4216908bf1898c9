"""An alert's evidence is a JSON object the detector writes; a row edited by hand or
restored may hold any JSON there. The alert is still listed, emailed and sent to webhooks,
and the project's other alerts with it."""

from __future__ import annotations

import pytest
from django.core import mail
from django.db.models import JSONField, Value
from django.urls import reverse
from django.utils import timezone

from alerts.detection import detect
from alerts.models import Flag
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
