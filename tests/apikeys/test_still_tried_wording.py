"""An ended key "still tried" names where the key itself was last refused (its
last_refused_at and last_refused_ip, written for the key's own calls only: a browser's
client token of it says nothing of who holds the key's secret) and how many calls were
refused since it ended, a count read from the key's roll-ups, which hold its client
tokens' refusals too. The four places that say it (the key list, the Alerts page, the
front page and the key's usage page) read "refused 3 minutes ago from <IP> (22 calls
after revocation)", as if the 22 came from there: each now says what the count holds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from alerts.models import Flag
from apikeys.models import ApiKey
from apikeys.services import client_token_create
from tests.conftest import usage_call
from usage.writer import usage_write

KEY_IP = "2001:db8::9"
BROWSER = "198.51.100.50"
COUNTED = "3 calls after revocation, its client tokens’ included"


@pytest.fixture
def still_tried(project, api_key) -> ApiKey:
    """Revoked 40 minutes ago, with an open alert: tried since once with the key itself,
    from KEY_IP, and twice with a client token it minted, from a browser."""
    key, _ = api_key
    minted, _ = client_token_create(project=project, api_key=key, context={})
    now = timezone.now()
    Flag.objects.create(
        project=project,
        api_key=key,
        kind=Flag.Kind.NEW_NETWORK,
        severity=Flag.Severity.MEDIUM,
        dedupe_key="leak",
        summary="Used from a new network",
        first_seen=now - timedelta(hours=1),
        last_seen=now - timedelta(hours=1),
    )
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=now - timedelta(minutes=40))
    refusal = {"status": 401, "error_code": "expired_api_key"}
    usage_write(
        [
            usage_call(now - timedelta(minutes=3), key=key, ip=KEY_IP, **refusal),
            usage_call(now - timedelta(minutes=2), client_token=minted, ip=BROWSER, **refusal),
            usage_call(now - timedelta(minutes=1), client_token=minted, ip=BROWSER, **refusal),
        ]
    )
    key.refresh_from_db()
    assert key.last_refused_ip == KEY_IP  # the key's own refusal, not the browser's later one
    return key


def test_the_key_list_says_the_count_holds_its_client_tokens_refusals(
    signed_in, project, still_tried
):
    html = signed_in.get(reverse("apikeys:api_key_list", args=[project.slug])).content.decode()
    ended = html[html.index('id="ended-title"') :]
    assert "refused" in ended and f"from {KEY_IP}" in ended and BROWSER not in ended
    assert COUNTED in ended


def test_the_alerts_page_says_the_count_holds_its_client_tokens_refusals(
    signed_in, project, still_tried
):
    html = signed_in.get(reverse("alerts:flag_list", args=[project.slug])).content.decode()
    assert "still tried: key last refused" in html
    assert f"from {KEY_IP} ({COUNTED})" in html


def test_the_front_page_says_the_count_holds_its_client_tokens_refusals(
    signed_in, project, still_tried
):
    html = signed_in.get(reverse("overview:project_overview", args=[project.slug])).content.decode()
    section = html[html.index('id="alerts-title"') :].split("</section>")[0]
    assert "still tried: key last refused" in section
    assert f"from {KEY_IP} ({COUNTED})" in section


def test_the_usage_page_says_the_count_holds_its_client_tokens_refusals(
    signed_in, project, still_tried
):
    url = reverse("usage:api_key_usage", args=[project.slug, still_tried.pk])
    html = signed_in.get(url).content.decode()
    header = html[html.index('class="revoked-alert"') :].split("</a>")[0]
    assert COUNTED in header
    assert "the key itself last refused" in header and f"from {KEY_IP}" in header
    assert BROWSER not in header
