from django.test import RequestFactory

from core.client_ip import client_ip


def request(remote: str, forwarded: str | None = None):
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    return RequestFactory().get("/", REMOTE_ADDR=remote, **extra)


def test_forwarded_for_is_ignored_without_trusted_proxies(settings):
    settings.TRUSTED_PROXIES = []
    assert client_ip(request("203.0.113.5", "198.51.100.1")) == "203.0.113.5"


def test_forwarded_for_from_an_untrusted_peer_is_ignored(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_ip(request("203.0.113.5", "198.51.100.1")) == "203.0.113.5"


def test_the_nearest_untrusted_hop_behind_our_proxies_is_the_client(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    # The client wrote "1.2.3.4" itself; our proxies appended the real hops.
    assert client_ip(request("10.0.0.2", "1.2.3.4, 198.51.100.7, 10.0.0.9")) == "198.51.100.7"


def test_garbage_in_forwarded_for_is_no_address_never_our_proxys(settings):
    """Not the proxy's own address, which an internal allowlist may well hold: no address
    at all, which every allowlist refuses (found in review)."""
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    for hop in ("not-an-ip", "198.51.100.7:5678", "[2001:db8::1]:443"):
        assert client_ip(request("10.0.0.2", hop)) == ""


def test_an_ipv4_client_on_a_dual_stack_socket_is_ipv4(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_ip(request("::ffff:203.0.113.5", "")) == "203.0.113.5"
    assert client_ip(request("10.0.0.2", "::ffff:198.51.100.7")) == "198.51.100.7"


def test_an_ipv6_zone_is_no_part_of_the_address(settings):
    """The database's address types refuse "fe80::1%eth0" (a link-local peer's zone, which
    Python's ipaddress accepts): the zone is dropped, wherever the address came from."""
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_ip(request("fe80::1%eth0")) == "fe80::1"
    assert client_ip(request("10.0.0.2", "fe80::7%25")) == "fe80::7"
    settings.TRUSTED_PROXIES = ["fe80::/10"]
    assert client_ip(request("fe80::2%eth0", "")) == "fe80::2"
