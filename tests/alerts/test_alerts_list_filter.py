"""The Alerts page's key filter, as htmx and as whole pages: what the page shows stays what
the filter above it says, through history and acknowledgements."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from alerts.models import Flag
from tests.conftest import HTMX


@pytest.fixture
def two_keys_flagged(project, make_key):
    """An open alert on each of two keys."""
    now = timezone.now()
    keys = [make_key(project, name=name)[0] for name in ("Billing", "Search")]
    for key in keys:
        Flag.objects.create(
            project=project,
            api_key=key,
            kind=Flag.Kind.VOLUME_SPIKE,
            severity=Flag.Severity.MEDIUM,
            dedupe_key=f"spike:{key.pk}",
            summary=f"Spike on {key.name}",
            first_seen=now - timedelta(minutes=5),
            last_seen=now,
        )
    return keys


def test_an_htmx_history_restore_of_the_alerts_page_gets_the_whole_page(
    signed_in, project, two_keys_flagged
):
    """htmx asks again for a page it pushed when its history cache misses, and puts the
    answer in place of the whole body: a fragment would leave the page without its
    navigation, heading and filter."""
    url = reverse("alerts:flag_list", args=[project.slug])
    key = two_keys_flagged[0]
    response = signed_in.get(
        url, {"key": key.pk}, headers={**HTMX, "HX-History-Restore-Request": "true"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html and 'id="flags"' in html and "<h1>Alerts</h1>" in html
    assert "Spike on Billing" in html and "Spike on Search" not in html


def test_the_alerts_list_and_its_filter_answer_htmx_and_whole_pages_apart_for_caches(
    signed_in, project
):
    url = reverse("alerts:flag_list", args=[project.slug])
    for headers in ({}, HTMX):
        assert "HX-Request" in signed_in.get(url, headers=headers)["Vary"]


def test_acknowledging_an_alert_in_a_filtered_list_keeps_the_list_filtered(
    signed_in, project, two_keys_flagged
):
    """The list that comes back after an acknowledgement is the list the filter above it
    names, not every key's, under a filter that still says one key."""
    billing, _ = two_keys_flagged
    Flag.objects.create(
        project=project,
        api_key=billing,
        kind=Flag.Kind.AUTH_FAILURE_BURST,
        severity=Flag.Severity.HIGH,
        dedupe_key=f"burst:{billing.pk}",
        summary="Burst on Billing",
        first_seen=timezone.now() - timedelta(minutes=5),
        last_seen=timezone.now(),
    )
    list_url = reverse("alerts:flag_list", args=[project.slug])
    page = signed_in.get(list_url, {"key": billing.pk}, headers=HTMX).content.decode()
    spike = Flag.objects.get(api_key=billing, kind=Flag.Kind.VOLUME_SPIKE)
    # The acknowledge form's own hx-post address, as the page wrote it.
    ack_path = reverse("alerts:flag_acknowledge", args=[project.slug, spike.pk])
    start = page.index(f'hx-post="{ack_path}')
    ack_url = page[start + len('hx-post="') : page.index('"', start + len('hx-post="'))]
    html = signed_in.post(ack_url.replace("&amp;", "&"), headers=HTMX).content.decode()
    assert "Burst on Billing" in html
    assert "Spike on Search" not in html

    # Without JavaScript: back to the same filtered list.
    burst = Flag.objects.get(kind=Flag.Kind.AUTH_FAILURE_BURST)
    page = signed_in.get(list_url, {"key": billing.pk}).content.decode()
    burst_path = reverse("alerts:flag_acknowledge", args=[project.slug, burst.pk])
    start = page.index(f'action="{burst_path}')
    action = page[start + len('action="') : page.index('"', start + len('action="'))]
    response = signed_in.post(action.replace("&amp;", "&"))
    assert response.status_code == 302
    assert response["Location"] == f"{list_url}?key={billing.pk}"


def test_a_key_without_open_alerts_is_not_told_nothing_needs_a_look_while_others_do(
    signed_in, project, two_keys_flagged
):
    """Filtered to one key, "Nothing needs a look" under a tab that counts the other
    key's open alert said the project was quiet: it says the key is, and leads to all."""
    billing, _ = two_keys_flagged
    Flag.objects.filter(api_key=billing).update(acknowledged_at=timezone.now())
    url = reverse("alerts:flag_list", args=[project.slug])
    for headers in ({}, HTMX):
        html = signed_in.get(url, {"key": billing.pk}, headers=headers).content.decode()
        assert "Nothing needs a look" not in html
        assert "No open alerts for “<bdi>Billing</bdi>”" in html
        assert f'href="{url}"' in html
    assert "Nothing needs a look" not in signed_in.get(url).content.decode()  # Search's is open


def test_an_acknowledgement_without_htmx_says_so_once(signed_in, project, two_keys_flagged):
    """The whole page drew its messages twice, at the top and again inside the list (the
    list's own copy is for htmx, which swaps it in place of the top one): two boxes
    saying the same, and two elements with the id "messages"."""
    flag = Flag.objects.filter(api_key=two_keys_flagged[0]).get()
    url = reverse("alerts:flag_acknowledge", args=[project.slug, flag.pk])
    html = signed_in.post(url, follow=True).content.decode()
    assert html.count("Alert acknowledged") == 1, html
    assert html.count('id="messages"') == 1


def _open_on(project, key, kinds) -> list[Flag]:
    now = timezone.now()
    return [
        Flag.objects.create(
            project=project,
            api_key=key,
            kind=kind,
            severity=Flag.Severity.MEDIUM,
            dedupe_key=f"{kind}:{key.pk}",
            summary=f"{kind} on {key.name}",
            first_seen=now - timedelta(minutes=5),
            last_seen=now,
        )
        for kind in kinds
    ]


def test_all_open_alerts_of_a_key_are_acknowledged_at_once_each_audited(
    signed_in, project, user, two_keys_flagged
):
    """In a leak walked through by a review, the revoked key's alerts stayed open and the
    engineer clicked Acknowledge on each, 8 times. Each card of a key with several open
    alerts offers to acknowledge them all: one click, and each alert is acknowledged by
    that person, with an audit event of its own, as one click each would have done."""
    from audit.models import AuditEvent

    billing, search = two_keys_flagged
    _open_on(project, billing, [Flag.Kind.NEW_NETWORK, Flag.Kind.NEW_AGENT])
    billing.revoke(by=user)
    list_url = reverse("alerts:flag_list", args=[project.slug])
    url = reverse("alerts:flag_acknowledge_key", args=[project.slug, billing.pk])
    page = signed_in.get(list_url).content.decode()
    assert page.count(f'action="{url}"') == 3  # on each of Billing's cards, none of Search's
    assert "Acknowledge all 3 of this key" in page

    html = signed_in.post(url, headers=HTMX).content.decode()
    assert "3 alerts of “Billing” acknowledged" in html
    assert not Flag.objects.filter(api_key=billing, acknowledged_at__isnull=True).exists()
    assert set(Flag.objects.filter(api_key=billing).values_list("acknowledged_by", flat=True)) == {
        user.pk
    }
    events = AuditEvent.objects.filter(action="flag.acknowledged", actor=user, project=project)
    assert events.count() == 3
    assert all(e.metadata.get("all_of_key") and e.metadata.get("key_revoked") for e in events)
    assert Flag.objects.get(api_key=search).acknowledged_at is None  # another key's: open
    assert "Spike on Search" in html


def test_a_key_with_one_open_alert_is_offered_no_acknowledge_all(
    signed_in, project, two_keys_flagged
):
    billing, _ = two_keys_flagged
    page = signed_in.get(reverse("alerts:flag_list", args=[project.slug])).content.decode()
    url = reverse("alerts:flag_acknowledge_key", args=[project.slug, billing.pk])
    assert url not in page and "Acknowledge all" not in page


def test_acknowledging_all_of_a_key_keeps_the_list_filtered_and_works_without_htmx(
    signed_in, project, two_keys_flagged
):
    billing, _ = two_keys_flagged
    _open_on(project, billing, [Flag.Kind.NEW_NETWORK])
    list_url = reverse("alerts:flag_list", args=[project.slug])
    url = reverse("alerts:flag_acknowledge_key", args=[project.slug, billing.pk])
    page = signed_in.get(list_url, {"key": billing.pk}).content.decode()
    assert f'action="{url}?key={billing.pk}"' in page
    response = signed_in.post(f"{url}?key={billing.pk}")
    assert response.status_code == 302 and response["Location"] == f"{list_url}?key={billing.pk}"
    assert Flag.objects.filter(api_key=billing).open().count() == 0


def test_another_projects_key_alerts_cannot_be_acknowledged_all_at_once(
    client, make_user, project, two_keys_flagged
):
    billing, _ = two_keys_flagged
    intruder = make_user(email="intruder@example.com")
    client.force_login(intruder)
    from accounts.models import Project

    theirs = Project.objects.for_user(intruder).get()
    for slug in (theirs.slug, project.slug):
        url = reverse("alerts:flag_acknowledge_key", args=[slug, billing.pk])
        assert client.post(url).status_code == 404
    assert Flag.objects.filter(api_key=billing).open().count() == 1
