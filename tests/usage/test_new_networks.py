"""A key's usage page marks an address "new" and leaves its network out of the allowed
networks it fills in by one definition of new (usage.key_usage.new_since), and names at most
a few of the networks it left out."""

from __future__ import annotations

import re
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from tests.conftest import usage_call
from usage.writer import usage_write

LEFT_OUT_SHOWN = 10


def _marked_new(html: str, address: str) -> bool:
    return bool(re.search(re.escape(address) + r'</a> <span class="badge badge-accent">new', html))


def test_an_address_is_marked_new_exactly_when_its_network_is_left_out(signed_in, project, api_key):
    """The badge started at the "Last 24 hours" window's start (the next whole hour less a
    day), the suggestion at now less a day: an address first seen between the two (23 to
    24 hours ago) was left out of the networks filled in, and said nothing of why."""
    key = api_key[0]
    now = timezone.now()
    usage_write(
        [
            usage_call(now - timedelta(days=6), key=key, ip="10.20.0.11"),
            usage_call(now - timedelta(hours=24) + timedelta(seconds=2), key=key, ip="45.83.64.17"),
            usage_call(now - timedelta(minutes=5), key=key, ip="198.51.100.4"),
        ]
    )
    page = signed_in.get(reverse("usage:api_key_usage", args=[project.slug, key.pk]))
    html = page.content.decode()
    offered = page.context["networks_form"].initial["networks"].split("\n")
    for address, network in (("45.83.64.17", "45.83.64.0/24"), ("198.51.100.4", "198.51.100.0/24")):
        assert _marked_new(html, address) == (network not in offered), address
    assert _marked_new(html, "198.51.100.4") and "198.51.100.0/24" not in offered
    assert not _marked_new(html, "10.20.0.11") and "10.20.0.0/24" in offered


def test_the_networks_left_out_are_named_up_to_ten_and_the_rest_counted(
    signed_in, project, api_key
):
    """A leaked key sprayed from hundreds of /24s in its last day listed every one of them
    (up to 500) in one sentence under the field."""
    key = api_key[0]
    now = timezone.now()
    usage_write(
        [
            usage_call(now - timedelta(days=6), key=key, ip="10.20.0.11"),
            *(
                usage_call(now - timedelta(minutes=5), key=key, ip=f"45.83.{i}.7")
                for i in range(25)
            ),
        ]
    )
    page = signed_in.get(reverse("usage:api_key_usage", args=[project.slug, key.pk]))
    html = page.content.decode()
    sentence = html[html.index("Left out, as first seen") :].split("</p>")[0]
    assert len(re.findall(r"45\.83\.\d+\.0/24", sentence)) == LEFT_OUT_SHOWN
    assert "and 15 more" in sentence
    assert page.context["networks_form"].initial["networks"] == "10.20.0.0/24"
