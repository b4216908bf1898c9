"""The address a request came from, believing X-Forwarded-For only from our own proxies.

Sign-in lockout (django-axes) and the API usage log both use this, so that an attacker
cannot choose the address that a failure or a call is counted against.
"""

import ipaddress
from functools import cache, lru_cache

from django.conf import settings
from django.http import HttpRequest

type IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@cache
def _trusted_networks(proxies: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _is_trusted(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    """Whether `address` is one of our proxies. An IPv4 proxy written as IPv4-mapped IPv6
    (::ffff:10.0.0.9: a proxy on a dual-stack socket writes the hop it saw so) is that IPv4
    address: compared as IPv6 it was in no IPv4 network, and taken for the client."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return any(ip in network or (mapped is not None and mapped in network) for network in networks)


def trusted_networks() -> tuple[IPNetwork, ...]:
    """TRUSTED_PROXIES as networks (worked out once per setting)."""
    return _trusted_networks(tuple(settings.TRUSTED_PROXIES))


@lru_cache(maxsize=1024)
def is_trusted_proxy(remote_addr: str, networks: tuple[IPNetwork, ...]) -> bool:
    """Whether the peer `remote_addr` is one of our proxies. Cached: behind a proxy, every
    request comes from one of a few addresses, and the API asks on every call."""
    return _is_trusted(_plain(remote_addr), networks)


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or the nearest untrusted hop of X-Forwarded-For.

    Walks X-Forwarded-For from the right (the hop our proxy appended) and stops at the
    first address that is not one of TRUSTED_PROXIES; anything left of it was written
    by the client and is not believed. Worked out once per request (the API reads it
    for the allowlist and again for the usage log).
    """
    known: str | None = getattr(request, "_client_ip", None)
    if known is None:
        known = request._client_ip = _client_ip(request)  # type: ignore[attr-defined]
    return known


def _client_ip(request: HttpRequest) -> str:
    remote = _plain(request.META.get("REMOTE_ADDR", "") or "")
    networks = _trusted_networks(tuple(settings.TRUSTED_PROXIES))
    if not networks or not _is_trusted(remote, networks):
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, networks):
            try:
                return _plain(str(ipaddress.ip_address(hop)))
            except ValueError:
                # A hop we cannot read ("1.2.3.4:5678", garbage): no address at all, which
                # every network allowlist refuses, rather than our own proxy's.
                return ""
    return _plain(hops[0]) if hops else remote


def _plain(address: str) -> str:
    """An IPv4 client as IPv4: a dual-stack socket reports it as ::ffff:a.b.c.d, which
    would otherwise fall in no IPv4 network (and count as one IPv6 /48 for everyone).
    An IPv6 address without its zone (fe80::1%eth0): the zone names an interface of the
    host that saw it, not the client, and PostgreSQL's inet refuses it, which dropped the
    call's usage entry."""
    if ":" not in address:
        return address  # IPv4 (or unreadable): not written as IPv6, nothing to unwrap
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        if ip.scope_id is not None:
            return address.partition("%")[0]
    return address
