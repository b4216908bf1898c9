"""A key's usage page tells the key's own addresses (calls made with its secret: what
"used from" means, what its allowed networks govern and draw their suggestion from) from
the browsers its client tokens were used from, which its allowed networks do not govern
(api/authentication.py checks them for the key's own calls only)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Project
from apikeys.models import ApiKey, ClientToken
from tests.conftest import usage_call
from usage.models import UsageIp
from usage.writer import usage_write

SERVER = "203.0.113.7"  # the customer's backend, which mints the client tokens
BROWSER = "198.51.100.23"  # one of its users' browsers


@pytest.fixture
def used(key: ApiKey, minted: ClientToken) -> ApiKey:
    """The key called from its server for days; a token it minted, from a browser."""
    now = timezone.now()
    usage_write(
        [
            usage_call(now - timedelta(days=3), key=key, ip=SERVER),
            usage_call(now - timedelta(minutes=30), key=key, ip=SERVER),
            usage_call(now - timedelta(days=2), client_token=minted, ip=BROWSER),
            usage_call(now - timedelta(minutes=20), client_token=minted, ip=BROWSER),
            usage_call(now - timedelta(minutes=10), client_token=minted, ip=BROWSER),
        ]
    )
    return key


def usage_url(project: Project, key: ApiKey) -> str:
    return reverse("usage:api_key_usage", args=[project.slug, key.pk])


def test_the_usage_page_lists_the_keys_own_addresses_and_its_client_tokens_apart(
    signed_in: Client, project: Project, used: ApiKey
) -> None:
    response: Any = signed_in.get(usage_url(project, used))
    summary = response.context["summary"]
    assert [(a.ip, a.requests) for a in summary.addresses] == [(SERVER, 2)]
    assert [(a.ip, a.requests) for a in summary.token_addresses] == [(BROWSER, 3)]
    assert [w.distinct_ips for w in summary.windows] == [1, 1]
    assert [w.token_ips for w in summary.windows] == [1, 1]
    html = response.content.decode()
    own = html[html.index('id="addresses-title"') : html.index('id="token-addresses-title"')]
    browsers = html[html.index('id="token-addresses-title"') : html.index('id="networks-title"')]
    assert SERVER in own and BROWSER not in own
    assert BROWSER in browsers and SERVER not in browsers
    assert "client tokens" in browsers and "not offered" in browsers


def test_the_allowed_networks_suggestion_offers_the_keys_own_networks_only(
    signed_in: Client, project: Project, used: ApiKey
) -> None:
    """The browsers' network was offered beside the server's: saved as it came, the key's
    secret would have worked from a stranger's browser network."""
    response: Any = signed_in.get(usage_url(project, used))
    assert response.context["networks_form"].initial["networks"] == "203.0.113.0/24"
    assert response.context["suggested_networks"] == ["203.0.113.0/24"]
    assert "198.51.100.0/24" not in response.content.decode()


def test_a_key_whose_client_tokens_alone_were_used_suggests_no_network(
    signed_in: Client, project: Project, key: ApiKey, minted: ClientToken
) -> None:
    usage_write([usage_call(timezone.now(), client_token=minted, ip=BROWSER)])
    response: Any = signed_in.get(usage_url(project, key))
    assert response.context["suggested_networks"] == []
    assert response.context["networks_form"].initial["networks"] == ""
    assert response.context["summary"].addresses == []


def test_an_address_used_both_ways_is_counted_on_each_side(
    signed_in: Client, project: Project, key: ApiKey, minted: ClientToken
) -> None:
    """A developer trying the app from the office that hosts the backend."""
    now = timezone.now()
    usage_write(
        [
            usage_call(now - timedelta(hours=5), key=key, ip=SERVER),
            usage_call(now - timedelta(hours=1), client_token=minted, ip=SERVER),
            usage_call(now - timedelta(minutes=2), client_token=minted, ip=SERVER),
        ]
    )
    rows = UsageIp.objects.filter(api_key=key).order_by("via_client_tokens")
    assert [(r.ip, r.via_client_tokens, r.requests) for r in rows] == [
        (SERVER, False, 1),
        (SERVER, True, 2),
    ]
    own, browser = rows
    assert own.last_seen == now - timedelta(hours=5)
    assert browser.first_seen == now - timedelta(hours=1)


def test_the_full_address_list_shows_the_keys_own_and_links_its_client_tokens_apart(
    signed_in: Client, project: Project, used: ApiKey
) -> None:
    own_url = reverse("usage:api_key_addresses", args=[project.slug, used.pk])
    browsers_url = reverse("usage:api_key_token_addresses", args=[project.slug, used.pk])
    own: Any = signed_in.get(own_url)
    assert [row.ip for row in own.context["page"].rows] == [SERVER]
    assert (own.context["counts"].own, own.context["counts"].via_client_tokens) == (1, 1)
    assert browsers_url.encode() in own.content
    browsers: Any = signed_in.get(browsers_url)
    assert browsers.status_code == 200
    assert [row.ip for row in browsers.context["page"].rows] == [BROWSER]
    assert own_url.encode() in browsers.content
    assert b"client tokens" in browsers.content


def test_the_usage_page_links_every_browser_address_when_it_lists_only_some(
    signed_in: Client, project: Project, key: ApiKey, minted: ClientToken
) -> None:
    now = timezone.now()
    usage_write(
        [
            usage_call(now - timedelta(minutes=i), client_token=minted, ip=f"45.83.{i}.9")
            for i in range(14)
        ]
    )
    response: Any = signed_in.get(usage_url(project, key))
    assert response.context["summary"].more_token_addresses == 4
    browsers_url = reverse("usage:api_key_token_addresses", args=[project.slug, key.pk])
    assert browsers_url.encode() in response.content
    assert b"4 more" in response.content


@pytest.mark.parametrize(
    "before",
    ["x", "99991231T235959.999999Z_1", "20261206T000000.000000Z_99999999999999999999", "²\x00"],
)
def test_a_damaged_page_link_of_the_client_token_addresses_is_not_a_500(
    signed_in: Client, project: Project, used: ApiKey, before: str
) -> None:
    url = reverse("usage:api_key_token_addresses", args=[project.slug, used.pk])
    assert signed_in.get(url, {"before": before}).status_code in (200, 400)


def test_another_projects_client_token_addresses_are_not_found(
    signed_in: Client, make_user: Any, make_project: Any, make_key: Any
) -> None:
    other = make_project(make_user(email="someone@example.com"), name="Other")
    theirs, _ = make_key(other, name="Theirs")
    url = reverse("usage:api_key_token_addresses", args=[other.slug, theirs.pk])
    assert signed_in.get(url).status_code == 404


def test_the_networks_a_suspended_key_was_refused_from_are_not_offered_as_allowed(
    signed_in: Client, project: Project, key: ApiKey
) -> None:
    """Found in review: the key suspended when it leaked, the leak's caller kept trying it
    from its own network, refused (suspended_api_key) three hundred times over two days.
    UsageIp keeps every call's address whatever its answer, so that network was the key's
    busiest and was offered first, filled into the empty Allowed networks field: saved as
    it came before resuming the key, the list let the leak's holder in."""
    now = timezone.now()
    leak = "45.83.64.9"
    calls = [usage_call(now - timedelta(days=3), key=key, ip=SERVER)]
    calls += [
        usage_call(
            now - timedelta(days=2, minutes=i),
            key=key,
            ip=leak,
            status=401,
            error_code="suspended_api_key",
        )
        for i in range(300)
    ]
    usage_write(calls)
    response: Any = signed_in.get(usage_url(project, key))
    assert response.context["suggested_networks"] == ["203.0.113.0/24"]
    assert response.context["networks_form"].initial["networks"] == "203.0.113.0/24"


@pytest.mark.parametrize("path", ["/client/token", "/client"])
def test_the_networks_a_key_was_sent_to_the_client_api_from_are_not_offered_as_allowed(
    signed_in: Client, project: Project, key: ApiKey, path: str
) -> None:
    """A key sent to the Client API is in a page's code, and those calls come from its
    visitors' browsers: refused (a key is never let in there), they were counted as let
    in, and the browsers' networks were offered, busiest first, as the key's allowed
    networks, where saving the list as it came would have let any of them use the key."""
    now = timezone.now()
    calls = [usage_call(now - timedelta(days=3), key=key, ip=SERVER)]
    calls += [
        usage_call(
            now - timedelta(days=2, minutes=i),
            key=key,
            ip=BROWSER,
            method="GET",
            path=path,
            status=403,
            error_code="insufficient_permissions",
        )
        for i in range(50)
    ]
    usage_write(calls)
    response: Any = signed_in.get(usage_url(project, key))
    assert response.context["suggested_networks"] == ["203.0.113.0/24"]
    # Still listed where the key was used from: that is where it was tried.
    assert UsageIp.objects.get(api_key=key, ip=BROWSER).requests == 50
