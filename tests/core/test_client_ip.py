from django.test import RequestFactory

from apikeys.services import token_networks_set
from core.client_ip import client_ip
from tests.api.assertions import assert_error
from usage.models import UsageRecord


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


def test_a_proxy_of_ours_written_as_ipv4_mapped_ipv6_is_still_ours(settings):
    """A proxy listening on a dual-stack socket (nginx on [::]:80, say) writes the hop it
    saw, one of our IPv4 proxies, as ::ffff:10.0.0.9 into X-Forwarded-For. That hop was
    compared as IPv6 against TRUSTED_PROXIES' IPv4 networks, found in none, and taken for
    the client: every caller behind that chain was our own proxy's address."""
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_ip(request("10.0.0.2", "198.51.100.7, ::ffff:10.0.0.9")) == "198.51.100.7"
    assert client_ip(request("::ffff:10.0.0.2", "198.51.100.7, ::ffff:a00:9")) == "198.51.100.7"
    # Every hop ours: the first, as the address it is.
    assert client_ip(request("10.0.0.2", "::ffff:10.0.0.5, 10.0.0.9")) == "10.0.0.5"


def test_a_key_limited_to_our_own_network_refuses_a_caller_behind_a_dual_stack_proxy(
    settings, api, api_key, user
):
    """The same, as an allowlist sees it: a key limited to the internal network (where the
    proxies are) took calls from anyone on the internet."""
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    token_networks_set(api_key[0], networks=["10.0.0.0/8"], by=user)
    api.client.defaults["REMOTE_ADDR"] = "10.0.0.2"
    outside = api.post(
        "/v1/agents/my-agent/invoke",
        {"prompt": "hi"},
        headers={"X-Forwarded-For": "198.51.100.7, ::ffff:10.0.0.9"},
    )
    assert_error(outside, 403, "ip_not_allowed")
    assert UsageRecord.objects.get().ip == "198.51.100.7"
