"""`manage.py check --deploy`: settings that production needs and the defaults cannot give."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Tags, Warning, register

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
