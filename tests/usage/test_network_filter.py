"""The call logs' address filter takes a network too (what a new-network alert names: a /24
or a /48), strictly read: every wrong input is an error beside the field, never a 500."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Project, User
from apikeys.models import ApiKey
from tests.conftest import usage_call
from usage.writer import usage_write


@pytest.fixture
def leak(project: Project, make_key: Any) -> ApiKey:
    """A week from the office's 10.20.0.0/24, then 400 calls in an hour from two addresses
    of 45.83.64.0/24 (the incident), one from the network beside it, and two over IPv6."""
    key, _ = make_key(project, name="Production")
    now = timezone.now()
    entries = [
        usage_call(now - timedelta(days=6, minutes=m), key=key, ip="10.20.0.5") for m in range(5)
    ]
    entries += [
        usage_call(now - timedelta(seconds=9 * i + 1), key=key, ip=f"45.83.64.{17 + i % 2}")
        for i in range(400)
    ]
    entries.append(usage_call(now - timedelta(minutes=70), key=key, ip="45.83.65.1"))
    entries.append(usage_call(now - timedelta(minutes=80), key=key, ip="2001:db8:7::1"))
    entries.append(usage_call(now - timedelta(minutes=81), key=key, ip="2001:db8:8::1"))
    usage_write(entries)
    return key


def calls(client: Client, project: Project, **params: str) -> Any:
    return client.get(reverse("usage:project_calls", args=[project.slug]), params)


def key_calls(client: Client, project: Project, key: ApiKey, **params: str) -> Any:
    return client.get(reverse("usage:api_key_usage", args=[project.slug, key.pk]), params)


def every_row(client: Client, response: Any) -> list[Any]:
    """Every row the log lists, following its Older links."""
    rows: list[Any] = list(response.context["page"].rows)
    while response.context["links"]["older"]:
        response = client.get(response.context["links"]["older"])
        rows += response.context["page"].rows
    return rows


@pytest.mark.parametrize("log", ["project", "key"])
def test_a_network_filter_lists_every_call_from_inside_it_and_none_from_outside(
    signed_in: Client, project: Project, leak: ApiKey, log: str
) -> None:
    if log == "project":
        first = calls(signed_in, project, ip="45.83.64.0/24")
    else:
        first = key_calls(signed_in, project, leak, ip="45.83.64.0/24")
    assert first.status_code == 200
    rows = every_row(signed_in, first)
    assert len(rows) == 400
    assert {r.ip for r in rows} == {"45.83.64.17", "45.83.64.18"}


@pytest.mark.parametrize("log", ["project", "key"])
def test_an_ipv6_48_filter_lists_the_calls_inside_it(
    signed_in: Client, project: Project, leak: ApiKey, log: str
) -> None:
    if log == "project":
        page = calls(signed_in, project, ip="2001:db8:7::/48").context["page"]
    else:
        page = key_calls(signed_in, project, leak, ip="2001:db8:7::/48").context["page"]
    assert [r.ip for r in page.rows] == ["2001:db8:7::1"]


def test_a_network_nobody_called_from_lists_nothing(
    signed_in: Client, project: Project, leak: ApiKey
) -> None:
    assert key_calls(signed_in, project, leak, ip="198.51.100.0/24").context["page"].rows == []
    assert calls(signed_in, project, ip="198.51.100.0/24").context["page"].rows == []


def test_a_single_address_network_is_that_address(
    signed_in: Client, project: Project, leak: ApiKey
) -> None:
    page = calls(signed_in, project, ip="45.83.65.1/32").context["page"]
    assert [r.ip for r in page.rows] == ["45.83.65.1"]


def test_the_export_holds_the_networks_calls(
    signed_in: Client, project: Project, leak: ApiKey
) -> None:
    url = reverse("usage:project_calls_export", args=[project.slug])
    response: Any = signed_in.get(url, {"ip": "45.83.64.0/24"})
    body = b"".join(response.streaming_content).decode()
    assert len(list(csv.reader(io.StringIO(body)))) == 401


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("45.83.64.17/24", "45.83.64.0/24"),  # host bits: the network is suggested
        ("2001:db8:7::1/48", "2001:db8:7::/48"),
        ("0.0.0.0/0", "at least /16"),
        ("10.0.0.0/8", "at least /16"),
        ("::/0", "at least /32"),
        ("2001::/16", "at least /32"),
        ("45.83.64.0/33", "IPv4 or IPv6"),
        ("2001:db8::/129", "IPv4 or IPv6"),
        ("45.83.64.0/99999999999999999999", "IPv4 or IPv6"),
        ("45.83.64.0/²⁴", "IPv4 or IPv6"),
        ("45.83.64.0/2\x004", "IPv4 or IPv6"),
        ("45.83.64.0/-24", "IPv4 or IPv6"),
        ("45.83.64.0/", "IPv4 or IPv6"),
        ("/24", "IPv4 or IPv6"),
        ("45.83.64.0/24/24", "IPv4 or IPv6"),
        ("45.83.64.0 /24", "IPv4 or IPv6"),
        ("::ffff:45.83.64.0/120", "network as IPv4"),
        ("fe80::1%eth0/64", "IPv4 or IPv6"),
        ("٤٥.83.64.0/24", "IPv4 or IPv6"),
        ("4" * 10_000, "IPv4 or IPv6"),
    ],
)
@pytest.mark.parametrize("log", ["project", "key"])
def test_a_wrong_network_is_an_error_beside_the_field(
    signed_in: Client, project: Project, leak: ApiKey, log: str, typed: str, message: str
) -> None:
    if log == "project":
        response = calls(signed_in, project, ip=typed)
    else:
        response = key_calls(signed_in, project, leak, ip=typed)
    assert response.status_code == 400  # the page, its form saying what is wrong
    errors = response.context["form"].errors
    assert list(errors) == ["ip"]
    assert message in errors["ip"][0]
    assert "\x00" not in response.content.decode()


def test_spaces_around_a_network_are_dropped(
    signed_in: Client, project: Project, leak: ApiKey
) -> None:
    response = calls(signed_in, project, ip="  45.83.64.0/24\n")
    assert response.context["form"].is_valid()
    assert len(response.context["page"].rows) == 50


def test_the_personal_token_log_takes_a_network(
    signed_in: Client, user: User, project: Project
) -> None:
    from apikeys.services import personal_token_create

    pat, _ = personal_token_create(user=user, name="Laptop", projects=[project])
    now = timezone.now()
    usage_write(
        [
            usage_call(now - timedelta(minutes=1), pat=pat, project=project, ip="45.83.64.17"),
            usage_call(now - timedelta(minutes=2), pat=pat, project=project, ip="10.20.0.5"),
        ]
    )
    url = reverse("usage:personal_token_usage", args=[pat.pk])
    page = signed_in.get(url, {"ip": "45.83.64.0/24"}).context["page"]
    assert [r.ip for r in page.rows] == ["45.83.64.17"]


@pytest.mark.parametrize("field", ["ip", "order"])
@pytest.mark.parametrize("spaced", [False, True])
def test_a_key_pasted_into_the_network_or_order_field_is_neither_kept_nor_shown(
    signed_in: Client, project: Project, make_key: Any, field: str, spaced: bool
) -> None:
    key, secret = make_key(project, name="Leaked")
    pasted = f" {secret[:20]} {secret[20:]}\n" if spaced else secret
    url = reverse("usage:api_key_usage", args=[project.slug, key.pk])
    response: Any = signed_in.get(url, {field: pasted, "order": "oldest"}, follow=True)
    assert response.status_code in (200, 400)
    assert secret[11:30] not in response.content.decode()
    assert all(secret[11:30] not in hop for hop, _ in response.redirect_chain)
