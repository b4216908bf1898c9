"""A person's signed-in sessions: recorded at sign-in, seen as they are used, listed on
their Sessions page, and ended from there ("sign out everywhere else").

Each session is Django's own (django_session); a SignedInSession row beside it says where
it signed in from and when it was last seen, at most once every SEEN_EVERY per session so
that browsing costs no write per page. A sign-in from a network (a /24 or /48) this person
has never signed in from is emailed to them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import PendingSecondStep, SignedInSession, User
from audit.log import audit_record
from audit.models import AuditEvent
from core.client_ip import client_ip
from core.mail import one_line
from core.networks import network_around
from core.redact import redact_tokens_escaped

logger = logging.getLogger(__name__)

SEEN_EVERY = timedelta(minutes=5)
SEEN_KEY = "_seen_at"
# The sessions a person keeps at once. Their Sessions page lists every one, and a script
# that signs in on each run would otherwise leave a new one each time for two weeks
# (SESSION_COOKIE_AGE). Past it, a sign-in signs out the sessions least recently seen.
MAX_SESSIONS_PER_PERSON = 100
# A person's second steps (after the password, before the code or passkey) waiting at once:
# each is a session of its own, begun by any right password sent without a cookie.
PENDING_STEPS_PER_PERSON = 10


def _user_agent(request: HttpRequest) -> str:
    """The browser's user agent as a session keeps it, lists it and mails it: one line, and
    any token someone put in it, percent-escaped too, cut to its prefix, as everywhere else
    a request is kept."""
    return one_line(redact_tokens_escaped(request.META.get("HTTP_USER_AGENT", "")), limit=300)


def session_record(request: HttpRequest, user: User) -> None:
    """At sign-in: the new session's row, and an email if the network is new to them."""
    key = request.session.session_key
    if not key:
        request.session.save()
        key = request.session.session_key
    ip = client_ip(request) or None
    agent = _user_agent(request)
    new_network = ip is not None and not _signed_in_from_before(user, ip)
    SignedInSession.objects.update_or_create(
        session_key=key, defaults={"user": user, "ip": ip, "user_agent": agent}
    )
    request.session[SEEN_KEY] = timezone.now().isoformat()
    _sessions_trimmed(user)
    if new_network and _has_signed_in_before(user):
        transaction.on_commit(lambda: _tell_of_new_network(user, ip or "", agent))


def _sessions_trimmed(user: User) -> None:
    """Past MAX_SESSIONS_PER_PERSON, the least recently seen of `user`'s sessions end (the
    one signing in was seen just now). Only the ones past the cap are read."""
    _sessions_past_cap_ended(
        SignedInSession.objects.filter(user=user).order_by("-last_seen_at", "-id"),
        MAX_SESSIONS_PER_PERSON,
    )


def _sessions_past_cap_ended(
    records: QuerySet[SignedInSession] | QuerySet[PendingSecondStep], cap: int
) -> None:
    """The sessions of `records` (one person's, in the order they are kept) past the first
    `cap` end, with their records. Only the ones past the cap are read."""
    beyond = list(records.values_list("session_key", flat=True)[cap:])
    if beyond:
        Session.objects.filter(session_key__in=beyond).delete()
        records.model.objects.filter(session_key__in=beyond).delete()


def pending_step_record(request: HttpRequest, user: User) -> None:
    """A second step begun in this (new) session: past PENDING_STEPS_PER_PERSON of
    `user`'s waiting at once, the oldest end, sessions and all. Those sessions hold no
    sign-in (login() gives a signed-in session a new key), only a step that lasts 5
    minutes; a person starting again there is sent back to the password."""
    key = request.session.session_key
    if not key:
        request.session.save()
        key = request.session.session_key
    PendingSecondStep.objects.update_or_create(
        session_key=key, defaults={"user": user, "started_at": timezone.now()}
    )
    # A step whose session has gone waits for nothing, and must not count: a browser given
    # a new key (the password again, a passkey sign-in) would push out steps waiting in
    # others. Each row's session is saved before the row (cycle_key above).
    PendingSecondStep.objects.filter(
        ~Exists(Session.objects.filter(session_key=OuterRef("session_key"))), user=user
    ).delete()
    _sessions_past_cap_ended(
        PendingSecondStep.objects.filter(user=user).order_by("-started_at", "-id"),
        PENDING_STEPS_PER_PERSON,
    )


def pending_step_done(request: HttpRequest) -> None:
    """The step ended in a sign-in: the session about to get a new key is no longer one
    waiting."""
    key = request.session.session_key
    if key:
        PendingSecondStep.objects.filter(session_key=key).delete()


def session_seen(request: HttpRequest) -> None:
    """A signed-in request: note the session as seen, at most once every SEEN_EVERY."""
    now = timezone.now()
    last = request.session.get(SEEN_KEY)
    try:
        if last and now - datetime.fromisoformat(last) < SEEN_EVERY:
            return
    except (TypeError, ValueError):
        pass
    request.session[SEEN_KEY] = now.isoformat()
    key = request.session.session_key
    if key:
        ip = client_ip(request) or None
        seen = SignedInSession.objects.filter(session_key=key).update(last_seen_at=now, ip=ip)
        if not seen and request.user.pk is not None:
            # A session from before sessions were recorded (or whose row went missing):
            # listed from now on, so that it can be seen and signed out like any other.
            SignedInSession.objects.get_or_create(
                session_key=key,
                defaults={
                    "user_id": int(request.user.pk),
                    "ip": ip,
                    "user_agent": _user_agent(request),
                },
            )


def session_rekeyed(old_key: str | None, new_key: str | None) -> None:
    """The same browser under a new session key (after a password change)."""
    if old_key and new_key and old_key != new_key:
        SignedInSession.objects.filter(session_key=old_key).update(session_key=new_key)


def session_forget(request: HttpRequest) -> None:
    """At sign-out: the row goes with the session."""
    key = request.session.session_key
    if key:
        SignedInSession.objects.filter(session_key=key).delete()


@dataclass(frozen=True)
class SessionRow:
    """One line of the account's Sessions page: a signed-in browser, its user agent in words,
    and whether it is this browser (which has no "Sign out" of its own)."""

    session: SignedInSession
    device: str
    current: bool


def sessions_of(user: User, *, current_key: str | None) -> list[SessionRow]:
    """The person's sessions that are still signed in, the current one first."""
    live = set(
        Session.objects.filter(
            session_key__in=SignedInSession.objects.filter(user=user).values("session_key"),
            expire_date__gt=timezone.now(),
        ).values_list("session_key", flat=True)
    )
    rows = [
        SessionRow(s, describe_device(s.user_agent), s.session_key == current_key)
        for s in SignedInSession.objects.filter(user=user, session_key__in=live)
    ]
    return sorted(rows, key=lambda r: not r.current)


def signed_in_elsewhere(user: User, *, current_key: str | None) -> bool:
    """Whether the person has a session other than `current_key` (whose row may have gone)."""
    return SignedInSession.objects.filter(user=user).exclude(session_key=current_key).exists()


@transaction.atomic
def sessions_end_others(*, user: User, current_key: str | None, ip: str | None = None) -> int:
    """Sign out every other session of `user` at once. Returns how many ended."""
    others = list(
        SignedInSession.objects.filter(user=user)
        .exclude(session_key=current_key or "")
        .values_list("session_key", flat=True)
    )
    Session.objects.filter(session_key__in=others).delete()
    SignedInSession.objects.filter(session_key__in=others).delete()
    audit_record(
        action="user.signed_out_elsewhere",
        actor=user,
        target=user,
        ip=ip,
        metadata={"sessions": len(others)},
    )
    return len(others)


@transaction.atomic
def session_end(*, user: User, session_id: int, ip: str | None = None) -> bool:
    """Sign out one of `user`'s sessions (never someone else's). False if there was none."""
    row = SignedInSession.objects.filter(user=user, pk=session_id).first()
    if row is None:
        return False
    Session.objects.filter(session_key=row.session_key).delete()
    row.delete()
    audit_record(
        action="user.session_ended",
        actor=user,
        target=user,
        ip=ip,
        metadata={"from": row.ip or "", "device": describe_device(row.user_agent)},
    )
    return True


_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def describe_device(agent: str) -> str:
    """'Firefox on Linux' from a user agent, or 'Unknown browser'."""
    browser = next((name for mark, name in _BROWSERS if mark in agent), "")
    system = next((name for mark, name in _SYSTEMS if mark in agent), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "Unknown browser"


def _signed_in_from_before(user: User, ip: str) -> bool:
    try:
        network = network_around(ip)
    except ValueError:
        return True  # nothing to compare: say nothing
    earlier = AuditEvent.objects.filter(
        action="user.signed_in", actor=user, ip_address__isnull=False
    ).values_list("ip_address", flat=True)[:500]
    return any(_same_network(network, str(seen)) for seen in earlier)


def _same_network(network: str, address: str) -> bool:
    try:
        return network_around(address) == network
    except ValueError:
        return False


def _has_signed_in_before(user: User) -> bool:
    """Not their very first sign-in (signing up signs in: that is no news to them)."""
    return AuditEvent.objects.filter(action="user.signed_in", actor=user).exists()


def _tell_of_new_network(user: User, ip: str, agent: str) -> None:
    device = describe_device(agent)
    try:
        send_mail(
            subject="[Reminix] New sign-in to your account",
            message=(
                f"Someone signed in to your Reminix account ({user.email}) from {ip} "
                f"({device}), a network you had not signed in from before, at "
                f"{timezone.now():%-d %b %Y, %H:%M} UTC.\n\n"
                "If it was you, there is nothing to do. If not, change your password now "
                "(it signs out every other session) and review your sessions:\n"
                f"{settings.DASHBOARD_URL}/account/sessions/\n"
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[user.email],
        )
    except Exception as failure:  # the sign-in stands; the failure is logged
        logger.warning(
            "New-network sign-in email to user %s not sent (%s)", user.pk, type(failure).__name__
        )
