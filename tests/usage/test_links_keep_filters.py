"""A link from a filtered page to one key's call log keeps what the person was looking
at, as Stripe's logs do when drilling down: the project's call log and the usage
overview open the key's log at the same time range, outcome, address and kind of call
(its own, its client tokens'), so the key's log lists the calls of that key the page
was showing, not its whole history. A found secret's "Its usage", and the leak email,
open the calls made with the secret itself."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Project
from apikeys.models import ApiKey, ClientToken
from tests.conftest import log_walk, usage_call
from usage.writer import usage_write


@pytest.fixture
def calls(key: ApiKey, minted: ClientToken) -> None:
    """The key's calls: refused and not, its own and its client token's, from two
    addresses, an hour ago and three days ago."""
    now = timezone.now()
    entries = []
    for ago, tag in ((timedelta(hours=1), "h"), (timedelta(days=3), "d")):
        for i, (status, ip) in enumerate(
            [(200, "203.0.113.7"), (401, "203.0.113.7"), (401, "198.51.100.9"), (200, "")]
        ):
            at = now - ago - timedelta(seconds=i)
            entries.append(
                usage_call(at, key=key, status=status, ip=ip or None, request_id=f"req_k{tag}{i}")
            )
            entries.append(
                usage_call(
                    at - timedelta(milliseconds=500),
                    client_token=minted,
                    status=status,
                    ip=ip or None,
                    request_id=f"req_c{tag}{i}",
                )
            )
    usage_write(entries)


def key_link(html: str, key: ApiKey) -> str:
    path = reverse("usage:api_key_usage", args=[key.project.slug, key.pk])
    match = re.search(rf'href="({re.escape(path)}[^"#]*)"', html)
    assert match is not None, html
    return match.group(1).replace("&amp;", "&")


def query_of(link: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(link).query)


def listed(client: Client, link: str) -> list[str]:
    return sorted(log_walk(client, link))


def test_the_overviews_key_link_opens_the_keys_calls_it_counted(
    signed_in: Client, project: Project, key: ApiKey, calls: Any
) -> None:
    overview = reverse("usage:project_usage", args=[project.slug])
    response = signed_in.get(
        overview, {"range": "24h", "outcome": "auth_failure", "token_kind": "api_key"}
    )
    (caller,) = response.context["overview"].callers
    link = key_link(response.content.decode(), key)
    query = query_of(link)
    assert query["outcome"] == ["auth_failure"] and query["caller"] == ["key"]
    assert "since" in query and "until" in query
    assert listed(signed_in, link) == ["req_kh1", "req_kh2"]
    assert caller.counts.requests == 2


def test_the_overviews_key_link_keeps_its_address_filter(
    signed_in: Client, project: Project, key: ApiKey, calls: Any
) -> None:
    overview = reverse("usage:project_usage", args=[project.slug])
    response = signed_in.get(overview, {"range": "7d", "ip": "203.0.113.0/24"})
    link = key_link(response.content.decode(), key)
    assert query_of(link)["ip"] == ["203.0.113.0/24"]
    assert listed(signed_in, link) == ["req_cd0", "req_cd1", "req_ch0", "req_ch1"] + [
        "req_kd0",
        "req_kd1",
        "req_kh0",
        "req_kh1",
    ]


def test_the_call_logs_key_link_opens_the_keys_calls_it_listed(
    signed_in: Client, project: Project, key: ApiKey, calls: Any
) -> None:
    calls_url = reverse("usage:project_calls", args=[project.slug])
    since = f"{timezone.now() - timedelta(hours=2):%Y-%m-%dT%H:%M}"
    params = {"status": "401", "token_kind": "api_key", "since": since, "order": "oldest"}
    response = signed_in.get(calls_url, params)
    shown = sorted(row.request_id for row in response.context["page"].rows)
    assert shown == ["req_kh1", "req_kh2"]
    link = key_link(response.content.decode(), key)
    query = query_of(link)
    assert query["status"] == ["401"] and query["since"] == [since]
    assert query["caller"] == ["key"] and query["order"] == ["oldest"]
    assert "token_kind" not in query and "key" not in query
    assert listed(signed_in, link) == shown


def test_the_call_logs_key_link_leaves_out_a_request_id(
    signed_in: Client, project: Project, key: ApiKey
) -> None:
    """The key's log has no request id filter: the link opens its log, not an error."""
    request_id = "req_" + "a1" * 12
    usage_write([usage_call(timezone.now(), key=key, request_id=request_id)])
    calls_url = reverse("usage:project_calls", args=[project.slug])
    response = signed_in.get(calls_url, {"request_id": request_id})
    assert [row.request_id for row in response.context["page"].rows] == [request_id]
    link = key_link(response.content.decode(), key)
    assert "request_id" not in query_of(link)
    assert log_walk(signed_in, link) == [request_id]


def test_a_found_secrets_usage_opens_the_calls_made_with_the_key_itself(
    signed_in: Client, project: Project, api_key: tuple[ApiKey, str]
) -> None:
    key, secret = api_key
    response = signed_in.post(
        reverse("alerts:token_lookup", args=[project.slug]), {"token": secret}
    )
    link = key_link(response.content.decode(), key)
    assert query_of(link) == {"caller": ["key"]}
