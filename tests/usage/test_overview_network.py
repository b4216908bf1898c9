"""The project's Usage overview narrows to a network as the call log does (45.83.64.0/24,
IPv6 up to /48): a new-network alert names a /24, and the overview of it took a single
address only ("Enter a valid IPv4 or IPv6 address")."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Project
from apikeys.models import ApiKey
from core.csv_stream import IP_COLUMN
from core.forms import IpOrNetworkFilterField
from tests.conftest import usage_call
from tests.usage.test_overview import export_url, overview_url, read_csv
from usage.forms import OverviewFilterForm, ProjectLogFilterForm
from usage.writer import usage_write


@pytest.fixture
def now() -> datetime:
    return timezone.now()


@pytest.fixture
def spread(project: Project, api_key: tuple[ApiKey, str], now: datetime) -> None:
    """Two addresses of 198.51.100.0/24 and two of 2001:db8:5::/48, and calls outside both."""
    key = api_key[0]
    at = now - timedelta(minutes=5)
    ips = ["198.51.100.23", "198.51.100.99", "198.51.101.1", "203.0.113.7"]
    ips += ["2001:db8:5::1", "2001:db8:5:ff::2", "2001:db8:6::1"]
    usage_write([usage_call(at - timedelta(seconds=n), key=key, ip=ip) for n, ip in enumerate(ips)])


@pytest.mark.parametrize(
    ("network", "inside"),
    [
        ("198.51.100.0/24", {"198.51.100.23", "198.51.100.99"}),
        ("2001:db8:5::/48", {"2001:db8:5::1", "2001:db8:5:ff::2"}),
        ("198.51.100.23", {"198.51.100.23"}),
    ],
)
def test_the_overview_counts_the_calls_from_inside_the_network(
    signed_in, project, spread, network, inside
):
    response = signed_in.get(overview_url(project, ip=network))
    assert response.status_code == 200
    shown = response.context["overview"]
    assert shown.totals.requests == len(inside)
    assert {row.ip for row in shown.top_addresses} == inside
    rows = read_csv(signed_in.get(export_url(project, ip=network)))
    assert {row[IP_COLUMN] for row in rows} == inside


@pytest.mark.parametrize(
    ("network", "says"),
    [
        ("198.51.100.7/24", "Enter the network as 198.51.100.0/24"),
        ("10.0.0.0/8", "Choose a network of at least /"),
        ("2001::/16", "Choose a network of at least /"),
        ("not-an-address", "or a network, like 203.0.113.0/24"),
        ("a\x00b/24", "or a network, like 203.0.113.0/24"),
    ],
)
def test_a_wrong_network_is_refused_beside_the_field_as_on_the_call_log(
    signed_in, project, network, says
):
    for url in (overview_url(project), export_url(project)):
        response = signed_in.get(url, {"ip": network})
        assert response.status_code == 400
        html = unescape(response.content.decode())
        field = re.search(r'<div class="field field-ip">(.*?)</div>', html, re.S)
        assert field is not None and says in field.group(1), field
        assert "\x00" not in html


def test_the_overview_and_the_call_log_read_the_address_with_the_same_field(project):
    overview_field = OverviewFilterForm.base_fields["ip"]
    log_field = ProjectLogFilterForm.base_fields["ip"]
    assert type(overview_field) is type(log_field) is IpOrNetworkFilterField
    form = OverviewFilterForm({"ip": " 198.51.100.0/24 "}, project=project, now=timezone.now())
    assert form.is_valid() and form.filters().ip == "198.51.100.0/24"


@pytest.mark.parametrize("typed", ["::ffff:198.51.100.23", "::FFFF:c633:6417"])
def test_an_ipv4_address_written_as_ipv6_finds_its_calls(signed_in, project, spread, typed):
    """Found in review: the log holds a dual-stack caller's ::ffff:a.b.c.d as the IPv4
    address it is (core.client_ip), and the field kept the IPv6 spelling of one address
    (a network so written it refuses with "Write an IPv4 network as IPv4"), so the
    overview, its export and the call log found none of its calls: as if none were made.
    (A /128 so written is refused beside the field, as any mapped network is.)"""
    shown = signed_in.get(overview_url(project, ip=typed)).context["overview"]
    assert {row.ip for row in shown.top_addresses} == {"198.51.100.23"}
    assert {r[IP_COLUMN] for r in read_csv(signed_in.get(export_url(project, ip=typed)))} == {
        "198.51.100.23"
    }
    log = signed_in.get(reverse("usage:project_calls", args=[project.slug]), {"ip": typed})
    assert [row.ip for row in log.context["page"].rows] == ["198.51.100.23"]
    assert log.context["form"].cleaned_data["ip"] == "198.51.100.23"
