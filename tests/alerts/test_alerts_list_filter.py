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
