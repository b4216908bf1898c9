"""Sign-in attempts into the audit trail, from Django's auth signals.

Sign-ins happen inside Django's LoginView and login(), which announce them with
`user_logged_in` and `user_login_failed`; listening is the one place to see every attempt
without rewriting those views. Connected in AccountsConfig.ready(), after django-axes'
own receivers (axes comes first in INSTALLED_APPS), so a failure already knows whether
it locked the email or address out.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.dispatch import receiver
from django.http import HttpRequest

from accounts.models import User
from accounts.sessions import session_forget, session_record
from accounts.sudo import sudo_mark
from accounts.views.two_factor import PENDING_KEY
from audit.log import audit_record
from core.client_ip import client_ip
from core.counters import throttle_allows
from core.validators import no_secret

# Failed sign-ins cost a row each; these bound what someone hammering the form can write.
# An address is locked out after AXES_FAILURE_LIMIT failures, and while it is, each account
# (or, for emails with no account, each address) gets at most this many more rows an hour:
LOCKED_OUT_ROWS_PER_HOUR = 10
# and failures for emails with no account (they show on no page) at most this many an hour.
UNKNOWN_EMAIL_ROWS_PER_HOUR = 1000


def _ip(request: HttpRequest | None) -> str | None:
    return (client_ip(request) or None) if request is not None else None


@receiver(user_logged_in, dispatch_uid="accounts.audit.user_signed_in")
def record_sign_in(sender: type, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session"):
        # Whoever signs in ends a second step left open in this browser by someone else,
        # whose password it has already passed: it must not wait for their code.
        request.session.pop(PENDING_KEY, None)
        # First: it compares this sign-in's network with the earlier sign-ins'.
        session_record(request, user)
        # Signing in is a check of who you are: sensitive actions need no other for a while.
        sudo_mark(request)
    audit_record(action="user.signed_in", actor=user, target=user, ip=_ip(request))


@receiver(user_logged_out, dispatch_uid="accounts.sessions.user_signed_out")
def forget_session(
    sender: type, request: HttpRequest | None, user: User | None, **kwargs: Any
) -> None:
    if request is not None and hasattr(request, "session"):
        session_forget(request)
    if user is not None:  # None: the session had no one signed in
        audit_record(action="user.signed_out", actor=user, target=user, ip=_ip(request))


def _worth_a_row(user: User | None, attempted: str, ip: str | None, *, locked_out: bool) -> bool:
    if locked_out:
        who = f"user:{user.pk}" if user is not None else f"ip:{ip}"
        return throttle_allows(
            f"audit-locked-out:{who}", limit=LOCKED_OUT_ROWS_PER_HOUR, window_seconds=3600
        )
    if user is None:
        return throttle_allows(
            "audit-unknown-email", limit=UNKNOWN_EMAIL_ROWS_PER_HOUR, window_seconds=3600
        )
    return True


@receiver(user_login_failed, dispatch_uid="accounts.audit.user_sign_in_failed")
def record_failed_sign_in(
    sender: str, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """A failure on an account is that account's event (its owner sees it on their audit
    page). A failure for an email with no account is kept with no actor and shows on no
    page. The password is never read: Django has already masked it, and we take only the
    email, and only if it looks like one (people do type passwords into the email box)."""
    attempted = str(credentials.get("username") or "").strip().lower()[:254]
    try:
        validate_email(attempted)
        no_secret(attempted)  # a token can be written as an address's first part
    except ValidationError:
        attempted = ""
    user = User.objects.filter(email=attempted).first() if attempted else None
    locked_out = request is not None and getattr(request, "axes_locked_out", False)
    if not _worth_a_row(user, attempted, _ip(request), locked_out=locked_out):
        return
    metadata: dict[str, Any] = {"locked_out": True} if locked_out else {}
    audit_record(
        action="user.sign_in_failed",
        actor=user,
        actor_email=attempted,
        target=user,
        target_label=attempted,
        ip=_ip(request),
        metadata=metadata,
    )
