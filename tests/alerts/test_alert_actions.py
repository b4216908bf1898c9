"""From an alert, one click to suspend, roll or revoke its key, or to say "this network is
ours" (issue 11, point 6): each a service with an audit event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.urls import reverse

from alerts import views as alert_views
from alerts.detection import detect
from alerts.models import Flag, KeyNetwork
from alerts.services import flag_network_ours
from apikeys.models import ApiKey
from apikeys.services import networks as networks_service
from apikeys.services import token_networks_set
from audit.models import AuditEvent
from tests.api.assertions import assert_ok
from tests.conftest import HTMX, the_second_waits_for_the_first, usage_call
from usage.writer import usage_write

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def key(api_key) -> ApiKey:
    key, _ = api_key
    ApiKey.objects.filter(pk=key.pk).update(created_at=NOW - timedelta(days=30))
    key.refresh_from_db()
    return key


def ours_url(project, flag):
    return reverse("alerts:flag_network_ours", args=[project.slug, flag.pk])


def new_network_flag(key) -> Flag:
    usage_write([usage_call(NOW - timedelta(days=3), key=key, ip="203.0.113.10")])
    usage_write([usage_call(NOW - timedelta(minutes=5), key=key, ip="198.51.100.7")])
    detect(now=NOW)
    return Flag.objects.get(kind=Flag.Kind.NEW_NETWORK)


def blocked_network_flag(api, key, user) -> Flag:
    """The key limited to 203.0.113.0/24, called once from 198.51.100.7: the alert."""
    token_networks_set(key, networks=["203.0.113.0/24"], by=user)
    api.client.defaults["REMOTE_ADDR"] = "198.51.100.7"
    api.post("/v1/agents/my-agent/invoke", {"prompt": "refused"})
    detect()
    return Flag.objects.get(kind=Flag.Kind.BLOCKED_NETWORK)


def test_the_alert_offers_suspend_roll_revoke_and_this_network_is_ours(signed_in, project, key):
    flag = new_network_flag(key)
    html = signed_in.get(reverse("alerts:flag_list", args=[project.slug])).content.decode()
    for url in (
        reverse("apikeys:api_key_suspend", args=[project.slug, key.pk]),
        reverse("apikeys:api_key_roll", args=[project.slug, key.pk]),
        reverse("apikeys:api_key_revoke", args=[project.slug, key.pk]),
        ours_url(project, flag),
    ):
        assert url in html


def test_an_alert_says_when_and_from_where_its_key_was_last_used(signed_in, project, key):
    """A new network's alert is last seen when the network first was: calls from it that
    went on since change neither. Whoever reads it asks whether the key is still in use,
    and from where: the card says, from the key."""
    flag = new_network_flag(key)
    usage_write([usage_call(NOW + timedelta(minutes=50), key=key, ip="198.51.100.9")])
    html = signed_in.get(reverse("alerts:flag_list", args=[project.slug])).content.decode()
    card = html.split(f'id="flag-{flag.pk}"')[1].split("</li>")[0]
    assert "key last used" in card and "from 198.51.100.9" in card


def test_an_alert_of_a_revoked_key_still_tried_says_when_it_was_last_refused(
    signed_in, project, key
):
    """A leaked key revoked and still tried read "key last used" from its last success, as
    if the leak had stopped: the last refusal, newer, is said beside it."""
    flag = new_network_flag(key)
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=NOW + timedelta(minutes=10))
    refused_at = NOW + timedelta(minutes=20)
    refused = usage_call(
        refused_at, key=key, ip="198.51.100.9", status=401, error_code="expired_api_key"
    )
    usage_write([refused])
    key.refresh_from_db()
    assert key.last_refused_at == refused_at
    html = signed_in.get(reverse("alerts:flag_list", args=[project.slug])).content.decode()
    card = html.split(f'id="flag-{flag.pk}"')[1].split("</li>")[0]
    assert "key last used" in card and "still tried: key last refused" in card
    assert f'datetime="{refused_at.isoformat()}"' in card
    # Where from, and how often since the revocation: a leak's caller, not the key's own.
    assert "from 198.51.100.9 (1 call after revocation, its client tokens’ included)" in card


def test_a_new_network_confirmed_as_ours_is_known_and_the_alert_closed(
    signed_in, project, key, user
):
    flag = new_network_flag(key)
    done = signed_in.post(ours_url(project, flag), headers=HTMX)
    assert done.status_code == 200
    flag.refresh_from_db()
    assert flag.acknowledged_by == user
    known = KeyNetwork.objects.get(api_key=key, network="198.51.100.0/24")
    assert known.confirmed_by == user and known.confirmed_at is not None
    event = AuditEvent.objects.get(action="flag.network_ours")
    assert event.metadata["networks"] == ["198.51.100.0/24"] and event.project == project
    key.refresh_from_db()
    assert key.allowed_networks == []  # a known network; no allowlist is made


def test_a_blocked_network_confirmed_as_ours_is_added_to_the_allowlist(
    signed_in, project, api, api_key, user
):
    key = api_key[0]
    flag = blocked_network_flag(api, key, user)
    done = signed_in.post(ours_url(project, flag))
    assert done.status_code == 302
    key.refresh_from_db()
    assert key.allowed_networks == ["203.0.113.0/24", "198.51.100.0/24"]
    assert AuditEvent.objects.filter(action="api_key.networks_changed").count() == 2
    assert_ok(api.post("/v1/agents/my-agent/invoke", {"prompt": "allowed now"}))


def test_other_alerts_have_no_network_to_call_ours(signed_in, project, key):
    usage_write([usage_call(NOW, key=key, status=401, error_code="expired_api_key")])
    detect(now=NOW + timedelta(minutes=1))
    flag = Flag.objects.get()
    response = signed_in.post(ours_url(project, flag), follow=True)
    assert "not about a network" in response.content.decode()
    flag.refresh_from_db()
    assert flag.acknowledged_at is None


def test_another_projects_alert_cannot_be_confirmed(
    signed_in, project, make_project, make_user, make_key
):
    theirs = make_project(make_user(email="them@example.com"), name="Theirs")
    their_key, _ = make_key(theirs, name="Theirs")
    ApiKey.objects.filter(pk=their_key.pk).update(created_at=NOW - timedelta(days=30))
    flag = new_network_flag(ApiKey.objects.get(pk=their_key.pk))
    for slug_project in (project, theirs):
        assert signed_in.post(ours_url(slug_project, flag)).status_code == 404
    flag.refresh_from_db()
    assert flag.acknowledged_at is None


def test_a_blocked_network_is_not_added_to_a_list_that_was_emptied_meanwhile(
    signed_in, project, api, api_key, user
):
    """Found in review: one click would have turned 'any network' into a short list."""
    key = api_key[0]
    flag = blocked_network_flag(api, key, user)
    html = signed_in.get(reverse("alerts:flag_list", args=[project.slug])).content.decode()
    assert "198.51.100.0/24 is ours" in html  # the button names the one network it adds
    token_networks_set(key, networks=[], by=user)
    response = signed_in.post(ours_url(project, flag), follow=True)
    assert "used from any network" in response.content.decode()
    key.refresh_from_db()
    assert key.allowed_networks == []


@pytest.mark.django_db(transaction=True)
def test_a_network_taken_out_while_another_is_called_ours_stays_out(
    project, api_key, user, monkeypatch
):
    """Found racing the two: the click added its network to the list as the page had read
    it, and so put back the network an owner had just taken out of it."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: the lock is shown on PostgreSQL.")
    key = api_key[0]
    token_networks_set(key, networks=["203.0.113.0/24", "192.0.2.0/24"], by=user)
    flag = Flag.objects.create(
        project=project,
        api_key=key,
        kind=Flag.Kind.BLOCKED_NETWORK,
        severity=Flag.Severity.HIGH,
        dedupe_key="blocked",
        summary="Refused from 198.51.100.7",
        evidence={"ips": ["198.51.100.7"]},
        first_seen=NOW,
        last_seen=NOW,
    )
    clicked = the_second_waits_for_the_first(
        monkeypatch,
        networks_service,
        "audit_record",
        lambda: token_networks_set(
            ApiKey.objects.get(pk=key.pk), networks=["192.0.2.0/24"], by=user
        ),
        # As the alerts page reads it: the flag with its key, before the first commits.
        lambda: flag_network_ours(
            flag=Flag.objects.select_related("api_key", "project").get(pk=flag.pk), by=user
        ),
    )
    assert clicked == []
    key.refresh_from_db()
    assert key.allowed_networks == ["192.0.2.0/24", "198.51.100.0/24"]


def test_the_alerts_page_shows_the_most_severe_open_alerts_and_how_many_are_open(
    signed_in, project, api_key
):
    key, _ = api_key
    now = NOW
    Flag.objects.bulk_create(
        Flag(
            project=project,
            api_key=key,
            kind=Flag.Kind.NEW_NETWORK,
            severity=Flag.Severity.HIGH if n == 0 else Flag.Severity.LOW,
            dedupe_key=f"{project.pk}:new_network:{key.pk}:-:10.{n // 256}.{n % 256}.0/24",
            summary=f"network {n}",
            evidence={},
            first_seen=now,
            last_seen=now - timedelta(seconds=n),
        )
        for n in range(alert_views.OPEN_SHOWN + 5)
    )
    response = signed_in.get(reverse("alerts:flag_list", args=[project.slug]))
    shown = response.context["open_flags"]
    assert len(shown) == alert_views.OPEN_SHOWN
    assert shown[0][0].severity == Flag.Severity.HIGH
    html = response.content.decode()
    assert f"{alert_views.OPEN_SHOWN + 5} alerts are open" in html
