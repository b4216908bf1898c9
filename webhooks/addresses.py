"""Which webhook addresses we accept (when one is added) and which we connect to (at each
send): never our own network, whatever a name resolves to today.

The form check is for the person adding the endpoint (a clear error beside the field);
the send-time check is the guard, because DNS can change after the form was accepted.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from collections import Counter
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from django.conf import settings

from core.redact import holds_secret, holds_secret_escaped

MAX_URL_LENGTH = 2000
# Lookups still running, given up on or not. getaddrinfo cannot be stopped: one given up
# on keeps its thread until the resolver ends it (resolv.conf's timeouts, for each search
# domain in turn). A sender never waits for more than one at a time (delivery.SENDERS),
# so only lookups that outlive their wait add up; past this many, no more are started.
MAX_LOOKUPS_UNANSWERED = 32
# Of them, at most this many for one project's endpoints: an owner whose endpoints name
# hosts whose DNS servers never answer (theirs to make so) used them all, and every other
# project's deliveries then failed for want of a lookup, and gave up after the last retry.
MAX_LOOKUPS_UNANSWERED_PER_PROJECT = 4
# And at most this many for the endpoints one person made, in all their projects: a
# person may make up to 100 projects (accounts.services.MAX_PROJECTS_PER_PERSON), and a
# few of them, each within its share, used them all again. (Not a share per registered
# domain: without the public suffix list, one would be shared by every host under
# co.uk, and a zone made to stall there would stop everyone's.)
MAX_LOOKUPS_UNANSWERED_PER_PERSON = 4
LOOKUP_SECONDS = 5.0  # (the transport gives its own, within the attempt's)
_lookups_running = 0
# Unanswered lookups by share: ("project", id) and ("person", id).
_lookups_by_share: Counter[tuple[str, int]] = Counter()
_lookups_lock = threading.Lock()
type Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedAddress(ValueError):
    """An address we do not send to; the message says why, without the address's secrets."""


class LookupsBusy(RefusedAddress):
    """No lookup started: MAX_LOOKUPS_UNANSWERED (any project's), or the project's share
    of them (its other endpoints' perhaps), are still running. Nothing was tried, and the
    address may be fine."""


def allow_http() -> bool:
    return bool(settings.DEBUG or getattr(settings, "WEBHOOKS_ALLOW_HTTP", False))


def allow_loopback() -> bool:
    """Tests deliver to a receiver on 127.0.0.1; nothing else ever may."""
    return bool(getattr(settings, "WEBHOOKS_ALLOW_LOOPBACK", False))


def url_problem(url: str) -> tuple[str, str] | None:
    """Why `url` cannot be a webhook address, as (code, message); None if it can."""
    if len(url) > MAX_URL_LENGTH:
        return "too_long", f"Use an address of at most {MAX_URL_LENGTH:,} characters."
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return "control", "The address may not contain line breaks or control characters."
    if not url.isascii() or " " in url:
        return (
            "not_ascii",
            "Use only ASCII characters: percent-encode the others, and write an "
            "international domain name in its xn-- form.",
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "invalid", "Enter a whole address, like https://example.com/hooks/reminix."
    schemes = ("https", "http") if allow_http() else ("https",)
    if parts.scheme not in schemes:
        return "not_https", "Use an https:// address: deliveries carry your alerts."
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return (
            "userinfo",
            "Leave the user name and password out of the address; verify our signature instead.",
        )
    host = parts.hostname or ""
    # "%" in a host is an IPv6 zone (fe80::1%eth0): an interface of the sending host, ours,
    # through which no delivery reaches the customer.
    # An empty label (127.0.0.1.., hooks..example.com, .example.com) names no host; the
    # root's one dot at the end is a fully qualified name's.
    if not host or port == 0 or "%" in host or "" in host.removesuffix(".").split("."):
        return "invalid", "Enter a whole address, like https://example.com/hooks/reminix."
    literal = _ip_literal(host)
    if (literal is not None and not address_allowed(literal)) or _names_this_machine(host):
        return "private", "That address is on a private or reserved network: we cannot reach it."
    if literal is None and "." not in host.removesuffix("."):
        # A name without a dot (intranet, metadata) is completed with the sending host's
        # search domains: a name in our own network, not the customer's.
        return (
            "single_label",
            "Use a full domain name, like hooks.example.com: a name without a dot is looked "
            "up among our own network's names.",
        )
    return None


def _names_this_machine(host: str) -> bool:
    """localhost and the names under it, which RFC 6761 has resolve to loopback wherever
    they are looked up (the lookup would refuse them at send time; the form does now)."""
    name = host.removesuffix(".").lower()
    return name == "localhost" or name.endswith(".localhost")


# The ports a new endpoint may name: HTTPS's own and its usual other. Any public port was
# accepted, so an owner could aim endpoints at another host's SSH, mail or database port
# and read from the delivery log what answered from our address (GitHub allows any port;
# Zenduty, 443 only). Endpoints added before keep being sent to, and are marked so
# (port_not_accepted): stopping them unsaid would lose a customer's alerts.
PORTS = {"https": (443, 8443), "http": (80, 8080)}


def new_url_problem(url: str) -> tuple[str, str] | None:
    """Why `url` cannot be a new webhook address (a token in it, url_problem, its port)."""
    # First, so that a token in the user name is named as a token, not as a user name.
    # Only for new endpoints, as the port: one saved before keeps its deliveries.
    if holds_secret_escaped(url):
        if _only_signing_secrets(url):
            return (
                "token",
                "Take the signing secret out of the address: a whsec_ secret is never sent "
                "in a webhook URL. Verify our signature with it on each delivery instead.",
            )
        return (
            "token",
            "Take the Reminix token out of the address: a token is never stored in a "
            "webhook URL. Verify our signature on each delivery instead.",
        )
    problem = url_problem(url)
    if problem is not None:
        return problem
    if port_not_accepted(url) is not None:
        allowed = " or ".join(str(p) for p in PORTS[urlsplit(url).scheme])
        return "port", f"Use port {allowed}, or leave the port out: we send to no other."
    return None


def _only_signing_secrets(url: str) -> bool:
    """Whether the secrets `url` holds are webhook signing secrets (whsec_), no token: the
    address as sent and decoded as holds_secret_escaped reads it, without their prefix."""
    decoded = url
    for _ in range(3):
        decoded = unquote(decoded)
    return not holds_secret(re.sub("whsec_", "", f"{url} {decoded}", flags=re.IGNORECASE))


def port_not_accepted(url: str) -> int | None:
    """The port `url` names, if a new endpoint may not (None if it may, or names none)."""
    parts = urlsplit(url)
    if parts.port is None or parts.port in PORTS.get(parts.scheme, ()):
        return None
    if allow_loopback() and parts.hostname == "127.0.0.1":
        return None  # the tests' receivers listen where the system puts them
    return parts.port


def _ip_literal(host: str) -> Address | None:
    """The address `host` is written as, if it is one: standard forms, and the older IPv4
    forms the resolver still reads as addresses (2130706433, 0x7f.1, 0177.0.0.1, 127.1),
    so that those are refused beside the field too, not only when a delivery is sent.
    A fully qualified spelling ends in the root's dot (127.0.0.1.): the same address."""
    host = host.removesuffix(".")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def address_allowed(address: Address) -> bool:
    """Public unicast only: no loopback, private, link-local (cloud metadata at
    169.254.169.254), multicast, reserved or unspecified address, in IPv4 or IPv6, nor an
    IPv4 address hidden in an IPv6 one."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour or _nat64(address)
        if inner is not None:
            return address_allowed(inner)
    if allow_loopback() and address == ipaddress.IPv4Address("127.0.0.1"):
        return True
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def _nat64(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address in ipaddress.IPv6Network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def resolve(
    parts: SplitResult,
    *,
    within: float = LOOKUP_SECONDS,
    project_id: int | None = None,
    person_id: int | None = None,
) -> tuple[str, int, Address]:
    """The host, port and the one address to connect to, looked up in at most `within`
    seconds (for an endpoint of `project_id` made by `person_id`, within both their shares
    of the lookups). Every address the name resolves to must be allowed (a name with one
    private address among public ones is refused), and we connect to the address we
    checked, so DNS cannot change it in between."""
    problem = url_problem(parts.geturl())
    if problem is not None:
        raise RefusedAddress(problem[1])
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    infos = _lookup(host, port, within, _shares(project_id=project_id, person_id=person_id))
    addresses: list[Address] = []
    for info in infos:
        raw = str(info[4][0]).split("%", 1)[0]  # an IPv6 zone (fe80::1%eth0) is link-local
        try:
            addresses.append(ipaddress.ip_address(raw))
        except ValueError:
            raise RefusedAddress("DNS answered with something that is not an address.") from None
    if not addresses:
        raise RefusedAddress("DNS lookup found no address.")
    for address in addresses:
        if not address_allowed(address):
            raise RefusedAddress(
                "The host resolves to a private or reserved address: we do not send there."
            )
    return host, port, addresses[0]


def _shares(*, project_id: int | None, person_id: int | None) -> list[tuple[str, int]]:
    shares = [("project", project_id), ("person", person_id)]
    return [(kind, owner) for kind, owner in shares if owner is not None]


def _share_limit(kind: str) -> int:
    if kind == "project":
        return MAX_LOOKUPS_UNANSWERED_PER_PROJECT
    return MAX_LOOKUPS_UNANSWERED_PER_PERSON


_SHARE_REFUSALS = {
    "project": "Too many of this project's DNS lookups are still unanswered; tried again later.",
    "person": "Too many DNS lookups for the endpoints made by this one's maker are still "
    "unanswered; tried again later.",
}


def _lookup(host: str, port: int, within: float, shares: list[tuple[str, int]]) -> list[Any]:
    """getaddrinfo, waited for at most `within` seconds. It has no timeout of its own: a
    name whose servers never answer held the sender for as long as the resolver waited,
    and the attempt's own limit started only after it."""
    global _lookups_running
    with _lookups_lock:
        if _lookups_running >= MAX_LOOKUPS_UNANSWERED:
            raise LookupsBusy("Too many DNS lookups are still unanswered; tried again later.")
        for share in shares:
            if _lookups_by_share[share] >= _share_limit(share[0]):
                raise LookupsBusy(_SHARE_REFUSALS[share[0]])
        _lookups_by_share.update(shares)
        _lookups_running += 1
    answered = threading.Event()
    answer: list[Any] = []
    failure: list[BaseException] = []

    def look_up() -> None:
        global _lookups_running
        try:
            answer.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as error:
            failure.append(error)
        finally:
            with _lookups_lock:
                _lookups_running -= 1
                _lookups_by_share.subtract(shares)
                for share in shares:
                    if not _lookups_by_share[share]:
                        del _lookups_by_share[share]
            answered.set()

    threading.Thread(target=look_up, name="webhook-dns", daemon=True).start()
    if not answered.wait(within):
        raise RefusedAddress(f"DNS lookup: no answer within {within:g} seconds.")
    if failure:
        raise RefusedAddress(f"DNS lookup failed ({type(failure[0]).__name__}).")
    return answer
