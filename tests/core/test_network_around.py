"""network_around: the /24 (IPv4) or /48 (IPv6) a call's address is in, as the detector
learns a key's and a PAT's networks; it reads the address once."""

from __future__ import annotations

import ipaddress

import pytest

from core import networks
from core.networks import network_around

AROUND = [
    ("203.0.113.7", "203.0.113.0/24"),
    ("0.0.0.0", "0.0.0.0/24"),
    ("255.255.255.255", "255.255.255.0/24"),
    ("2001:db8:7:1::5", "2001:db8:7::/48"),
    ("2001:0db8:0000::0001", "2001:db8::/48"),  # padded hextets
    ("2001:DB8:A::1", "2001:db8:a::/48"),
    ("0:0:1::", "0:0:1::/48"),
    ("::1", "::/48"),
    ("fe80::1%eth0", "fe80::/48"),  # scoped: the scope is no part of the network
    ("fe80::1%1", "fe80::/48"),
    ("::ffff:203.0.113.7", "203.0.113.0/24"),  # mapped: the IPv4 address it is
    ("::FFFF:cb00:7107", "203.0.113.0/24"),
    ("::ffff:203.0.113.7%eth0", "203.0.113.0/24"),
]
NOT_ADDRESSES = [
    "",
    " 203.0.113.7",
    "203.0.113.7 ",
    "203.0.113.7\n",
    "010.0.113.7",  # zero-led: octal to some readers, refused
    "203.0.113.07",
    "203.0.113",
    "203.0.113.7/24",
    "fe80::1%",
    "٣.0.113.7",
]


@pytest.mark.parametrize(("address", "network"), AROUND)
def test_the_network_around_an_address(address, network):
    assert network_around(address) == network


@pytest.mark.parametrize("text", NOT_ADDRESSES)
def test_text_that_is_no_address_has_no_network(text):
    with pytest.raises(ValueError):
        network_around(text)


@pytest.mark.parametrize(("address", "network"), AROUND)
def test_the_address_is_read_once(address, network, monkeypatch):
    """Reading an address is most of the cost of a call's network, and the detector
    works out one for each call it reads: the network is made from the address read,
    not by writing it out and reading it again."""
    read: list[object] = []
    for name in ("ip_address", "ip_network", "ip_interface"):
        real = getattr(ipaddress, name)

        def counted(text, *args, _real=real, **kwargs):
            read.append(text)
            return _real(text, *args, **kwargs)

        monkeypatch.setattr(networks.ipaddress, name, counted)
    assert network_around(address) == network
    assert read == [address]
