"""Network allowlists: lists of IPv4/IPv6 networks (CIDR), as people type them and as a
call's address is checked against them.

`parse_networks()` turns what someone typed (one network or address per line, or commas)
into the canonical list, or says what is wrong with each line that is. `allowed()` is the
check made on an API call: a list parsed once per process and kept, an address parsed per
call, a few microseconds.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

type Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_NETWORKS = 20
_IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
# What a network can be written with: digits, hex, dots, colons and one slash. Anything
# else (a NUL byte, "²", a newline in the middle, a scope id) is refused before parsing.
_SHAPE = re.compile(r"[0-9A-Fa-f.:]{2,45}(?:/[0-9]{1,3})?")


def parse_networks(text: str) -> tuple[list[str], list[str]]:
    """(the networks, canonical and without repeats, in the order given; one message per
    line that is not a network). Bare addresses become /32 or /128; host bits are
    cleared ("10.1.2.3/24" is 10.1.2.0/24)."""
    networks: list[str] = []
    problems: list[str] = []
    for raw in re.split(r"[\n,]", text):
        entry = raw.strip()
        if not entry:
            continue
        shown = entry if entry.isprintable() and len(entry) <= 50 else "that entry"
        if not _SHAPE.fullmatch(entry):
            problems.append(f"“{shown}” is not an IPv4 or IPv6 network (like 203.0.113.0/24).")
            continue
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            problems.append(f"“{shown}” is not an IPv4 or IPv6 network (like 203.0.113.0/24).")
            continue
        if network.version == 6 and network.subnet_of(_IPV4_MAPPED):  # type: ignore[arg-type]
            problems.append(
                f"“{shown}” is an IPv4 network written as IPv6: write it as IPv4 "
                "(like 203.0.113.0/24)."
            )
            continue
        if network.prefixlen == 0:
            problems.append(
                f"“{shown}” allows every address; leave the list empty to allow any network."
            )
            continue
        canonical = str(network)
        if canonical not in networks:
            networks.append(canonical)
    if len(networks) > MAX_NETWORKS:
        problems.append(f"At most {MAX_NETWORKS} networks; merge some into wider ones.")
    return networks, problems


@lru_cache(maxsize=4096)
def _parsed(networks: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in networks)


def allowed(address: str, networks: list[str]) -> bool:
    """Whether `address` is inside one of `networks` (an empty list allows every address;
    an address that cannot be read is inside none)."""
    if not networks:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:203.0.113.7, as a dual-stack socket reports it
    return any(ip in network for network in _parsed(tuple(networks)))


# The host bits a network_around clears: all but the first 24 or 48.
_AROUND_V4 = 0xFFFFFFFF ^ 0xFF
_AROUND_V6 = ((1 << 128) - 1) ^ ((1 << 80) - 1)


def network_around(address: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) around an address: what a suggestion offers. An
    IPv4-mapped IPv6 address is taken as the IPv4 address it is (a scope id is no part
    of a network).

    The address is read once and its network written once: the detector works one out
    for each call it reads, and reading and writing addresses is most of that."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is None:
            return f"{ipaddress.IPv6Address(int(ip) & _AROUND_V6)}/48"
        ip = ip.ipv4_mapped
    return f"{ipaddress.IPv4Address(int(ip) & _AROUND_V4)}/24"


def address_block(ip: str) -> str:
    """What a limit per sender counts (reset and sign-up mails, leak reports): an IPv4
    address (an IPv4-mapped IPv6 one as the IPv4 address it is), or an IPv6 /64, since one
    host usually has a whole /64 to pick addresses from. Text that is no address counts
    as itself."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


# The widest network a call log's filter takes. Its calls are read on the (key or project,
# ip, created_at) index as a range of addresses, then sorted by time: a /8 would gather and
# sort a large share of every call the key or project ever made, for each page.
WIDEST_FILTER_PREFIX = {4: 16, 6: 32}


class NetworkFilterError(ValueError):
    """Why a typed filter is not a network (`code` for the form, `suggestion` if any)."""

    def __init__(self, code: str, suggestion: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.suggestion = suggestion


def filter_network(text: str) -> str:
    """The canonical form of a network typed into a log's address filter ("45.83.64.0/24",
    "2001:db8:7::/48"), or the bare address for a /32 or /128.

    Strict, unlike parse_networks: bits set past the prefix are refused, with the network
    they belong to as the suggestion (the filter would otherwise show other calls than
    were typed), as are IPv4-mapped IPv6 networks (the log holds IPv4 calls as IPv4) and
    networks wider than WIDEST_FILTER_PREFIX."""
    if not _SHAPE.fullmatch(text) or "/" not in text:
        raise NetworkFilterError("invalid")
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise NetworkFilterError("invalid") from None
    if network.version == 6 and network.subnet_of(_IPV4_MAPPED):  # type: ignore[arg-type]
        raise NetworkFilterError("ipv4_mapped")
    try:
        ipaddress.ip_network(text, strict=True)
    except ValueError:  # it parsed loosely: only bits past the prefix can be wrong
        raise NetworkFilterError("host_bits", suggestion=str(network)) from None
    if network.prefixlen < WIDEST_FILTER_PREFIX[network.version]:
        raise NetworkFilterError(f"too_wide_v{network.version}")
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


@lru_cache(maxsize=256)
def _filter_network(network: str) -> Network | None:
    try:
        return ipaddress.ip_network(network, strict=False)
    except ValueError:
        return None


def in_network(address: str | None, network: str | None) -> bool:
    """Whether `address` is inside `network` as PostgreSQL's inet `<<=` says it: an
    IPv4-mapped IPv6 address is an IPv6 address, in no IPv4 network. The in_network
    lookup's function on SQLite (core.network_lookup)."""
    if address is None or network is None:
        return False
    parsed = _filter_network(network)
    if parsed is None:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.version == parsed.version and ip in parsed
