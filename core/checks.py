"""`manage.py check --deploy`: settings that production needs and the defaults cannot give."""

from __future__ import annotations

from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Tags, Warning, register
from django.core.mail.message import sanitize_address

_THIS_MACHINE = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}  # noqa: S104 - names, not a bind


@register(Tags.security, deploy=True)
def mail_links_reach_the_dashboard(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Every link in mail (verification, password reset, invitations, alerts) is built on
    DASHBOARD_URL, never on a request's Host header. Left at its default, it points at
    the server's own loopback: nobody who gets the mail can open the link."""
    parts = urlsplit(settings.DASHBOARD_URL)
    if parts.scheme == "https" and (parts.hostname or "") not in _THIS_MACHINE:
        return []
    return [
        Warning(
            f"DASHBOARD_URL is {settings.DASHBOARD_URL!r}: the links in every email "
            "(verification, password resets, invitations, alerts) point there.",
            hint="Set DASHBOARD_URL to the dashboard's public https address, e.g. "
            "https://dashboard.example.com.",
            id="core.W001",
        )
    ]


_CONSOLE_MAIL = "django.core.mail.backends.console.EmailBackend"


@register(Tags.security, deploy=True)
def mail_is_not_printed(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """EMAIL_URL left at its default (the console) writes every email whole to the
    server's output, which is its log, outside the logging that cuts tokens out: each
    password-reset, confirmation and invitation link is then usable by whoever reads the
    log, and never reaches the person it was for."""
    if settings.EMAIL_BACKEND != _CONSOLE_MAIL:
        return []
    return [
        Warning(
            "Email is printed to the server's output (EMAIL_URL is the console): every "
            "password-reset, confirmation and invitation link lands in the log, and "
            "nobody receives one.",
            hint="Set EMAIL_URL to your mail server, e.g. "
            "smtp+tls://user:password@smtp.example.com:587.",
            id="core.W002",
        )
    ]


@register(Tags.security, deploy=True)
def a_security_contact_is_named(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Without SECURITY_CONTACT there is no /.well-known/security.txt (RFC 9116), the file
    a researcher who found a hole in a dashboard that guards production keys looks for
    first: the report goes nowhere, or into public."""
    if settings.SECURITY_CONTACT:
        return []
    return [
        Warning(
            "SECURITY_CONTACT is not set: /.well-known/security.txt is not served, and "
            "whoever finds a vulnerability is not told whom to report it to.",
            hint="Set SECURITY_CONTACT to a mailto: address or an https page, e.g. "
            "security@example.com.",
            id="core.W003",
        )
    ]


@register(Tags.security, deploy=True)
def the_proxy_in_front_is_named(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Production believes X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER): a TLS-terminating
    proxy is in front. Unless TRUSTED_PROXIES names it, its X-Forwarded-For is ignored and
    every request comes from the proxy's own address (core/client_ip.py): five wrong
    passwords from anyone lock everyone out of signing in, the sign-up and reset limits
    per address become the whole world's, and keys' allowed networks, alerts and the
    usage log all see one address."""
    if settings.TRUSTED_PROXIES or not getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        return []
    return [
        Warning(
            "TRUSTED_PROXIES is not set, though production expects a TLS-terminating proxy "
            "in front: every request counts as coming from that proxy's address, so five "
            "failed sign-ins from anyone lock everyone out for 15 minutes.",
            hint="Set TRUSTED_PROXIES to your proxies' addresses or networks, e.g. "
            "10.0.0.0/8; they must set X-Forwarded-For and X-Forwarded-Proto.",
            id="core.W004",
        )
    ]


@register(Tags.security, deploy=True)
def the_host_header_is_checked(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """ALLOWED_HOSTS is the one guard on what a page builds from the Host header (the API
    reference's examples, the passkeys' relying party and origin without WEBAUTHN_RP_ID,
    the checks that a next page is ours). `*` lets any name through, which Django's own
    deploy checks do not mention; mail links are built on DASHBOARD_URL either way."""
    if "*" not in settings.ALLOWED_HOSTS:
        return []
    return [
        Warning(
            "ALLOWED_HOSTS holds '*': a request for any host name is answered, and what "
            "the pages build from the Host header is the requester's to choose.",
            hint="List the dashboard's own host names, e.g. dashboard.example.com.",
            id="core.W005",
        )
    ]


# Names no mail can come from (RFC 6761, and 6762 for .local): a mail service refuses a
# sender there, or files what it sends as spam.
_NO_MAIL_FROM = ("local", "localhost", "test", "invalid")


@register(Tags.security, deploy=True)
def mail_comes_from_a_real_domain(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """DEFAULT_FROM_EMAIL left at its default sends from reminix.local. Each send that the
    mail service then refuses is logged and the change it was for still made, so nothing
    fails where anyone looks: the confirmation mail that lets a person create keys, the
    password resets, the alerts and the security notices never arrive."""
    sender = settings.DEFAULT_FROM_EMAIL
    # What Django sends from: a sender it cannot read (a comma in an unquoted name, a
    # domain's trailing dot) fails every send with "Invalid address", and one without a
    # domain is refused by every mail service.
    try:
        # As it goes out: the domain IDNA-encoded (a fullwidth ｌｏｃａｌ is local).
        sent_as = parseaddr(sanitize_address(sender, "utf-8"))[1]
    except ValueError:
        sent_as = ""
    sendable = "@" in sent_as
    if not sendable:
        return [
            Warning(
                f"DEFAULT_FROM_EMAIL ({sender!r}) is no address mail can be sent from: every "
                "send (confirmations, resets, alerts) fails or is refused.",
                hint="Set DEFAULT_FROM_EMAIL to an address of your own domain, e.g. "
                "Reminix <no-reply@example.com>.",
                id="core.W006",
            )
        ]
    domain = sent_as.rpartition("@")[2].rstrip(".").lower()
    if domain.rpartition(".")[2] not in _NO_MAIL_FROM:
        return []
    return [
        Warning(
            f"DEFAULT_FROM_EMAIL sends from {domain!r}, a name no mail can come from: mail "
            "services refuse or bury what it sends (confirmations, resets, alerts).",
            hint="Set DEFAULT_FROM_EMAIL to an address of your own domain, e.g. "
            "Reminix <no-reply@example.com>.",
            id="core.W006",
        )
    ]
