"""Verified email addresses: the link sent at sign-up, the change of address (the new one
confirmed by a link, the old one told), the notice an account's owner gets when
someone tries to sign up with their address, and the word an address with no account
gets when someone asks to reset its password.

Links are signed (Django's TimestampSigner, salted per purpose) and last 3 days, or until
the password changes; a GET only shows a button (mail scanners open links), a POST acts.
Until a person's address is verified they can sign in and look, but not mint credentials
or invite anyone.
"""

from __future__ import annotations

from functools import partial

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from accounts.models import Passkey, RecoveryCode, TotpDevice, User
from accounts.security_notices import security_notice_send
from audit.log import audit_record
from audit.models import AuditEvent
from core.after_answer import after_answer
from core.counters import throttle_allows
from core.invalidation import changed
from core.mail import inbox, one_line

LINK_MAX_AGE = 3 * 24 * 3600
_SALT = "accounts.email-verification"


class VerificationError(ValueError):
    """A link that is damaged, expired, or for an address or password that changed since."""


def _password_mark(user: User) -> str:
    """A keyed mark of the account's password hash (never the hash itself)."""
    return salted_hmac(_SALT, user.password, algorithm="sha256").hexdigest()[:32]


CHANGE_REQUESTED = "user.email_change_requested"


def _latest_change_request(user: User) -> int | None:
    """The newest of `user`'s requests to move their account (its audit event's id)."""
    return (
        AuditEvent.objects.filter(actor=user, action=CHANGE_REQUESTED)
        .order_by("-id")
        .values_list("pk", flat=True)
        .first()
    )


def _token(user: User, email: str, *, asked: int | None = None) -> str:
    # The address the link was sent to and the account's address then: a link for an
    # earlier change does nothing once the address moved on. And the password then: a
    # new password ends every link sent before it, as it ends Django's reset links, so
    # that whoever knew the old one cannot still move the account to their own address.
    data: dict[str, object] = {
        "u": user.pk,
        "to": email,
        "was": user.email,
        "pw": _password_mark(user),
    }
    if email != user.email:
        # And the request it answers (`asked`: its audit event; else the newest): asking
        # for another address ends the link to the one before, so that a mistyped
        # address's mailbox cannot still take the account once the person put it right.
        data["r"] = asked if asked is not None else _latest_change_request(user)
    return signing.dumps(data, salt=_SALT)


def verification_url(user: User, email: str, *, asked: int | None = None) -> str:
    path = reverse("accounts:email_verify", args=[_token(user, email, asked=asked)])
    return f"{settings.DASHBOARD_URL}{path}"


def _send(subject: str, body: str, to: str) -> None:
    """After the answer (core.after_answer): whether the address has an account
    decides which mail goes, and its time must not show in the answer's. A mail server
    down is logged there, never a 500."""
    after_answer(
        partial(
            send_mail,
            subject=one_line(subject),
            message=body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[to],
        ),
        what="account email",
    )


def send_verification(user: User, email: str | None = None, *, asked: int | None = None) -> None:
    """The link that confirms `email` (the account's own, or a new one it moves to, as
    asked by the request whose audit event is `asked`)."""
    to = email or user.email
    changing = to != user.email
    body = (
        (
            f"Someone asked to change the email of a Reminix account from {user.email} to "
            f"this address. If it was you, confirm it here (the link works for 3 days):\n\n"
        )
        if changing
        else (
            "Welcome to Reminix. Confirm your email address to start creating API keys "
            "(the link works for 3 days):\n\n"
        )
    )
    body += f"{verification_url(user, to, asked=asked)}\n\nIf it was not you, ignore this email.\n"
    _send("[Reminix] Confirm your email address", body, to)


# Mails that go to whatever address someone types (a sign-up's link or word that the
# address has an account, an address change's link or the same word): per inbox, as mail
# reaches it (core.mail.inbox), whoever asks and from wherever.
MAILS_TO_AN_INBOX_PER_HOUR = 3


def inbox_may_be_mailed(email: str) -> bool:
    """Count one more such mail to `email`'s inbox; False past the limit (the page then
    reads the same and nothing goes): neither form may become a way to flood someone's
    inbox, from one network or from many accounts."""
    return throttle_allows(
        f"account-mail:{inbox(email)}", limit=MAILS_TO_AN_INBOX_PER_HOUR, window_seconds=3600
    )


def send_already_registered(email: str) -> None:
    """Someone tried to sign up (or move an account) to an address that has an account:
    its owner is told, and the page answers as for any address."""
    body = (
        "Someone tried to create a Reminix account with this email address, which already "
        "has one. If it was you, sign in, or reset your password:\n\n"
        f"{settings.DASHBOARD_URL}{reverse('accounts:password_reset')}\n\n"
        "If it was not you, you need to do nothing.\n"
    )
    _send("[Reminix] Your email address was used to sign up", body, email)


def send_no_account(email: str) -> None:
    """Someone asked for a password reset for an address no account uses: it is told so,
    and the page answers as for any address. A mail either way, so that the answer's time
    does not tell which addresses have an account."""
    body = (
        "Someone asked to reset the password of a Reminix account for this address, but "
        "no Reminix account that signs in with a password uses it. If it was you, you may "
        "have signed up with another "
        f"address:\n\n{settings.DASHBOARD_URL}{reverse('accounts:password_reset')}\n\n"
        "If it was not you, you need to do nothing.\n"
    )
    _send("[Reminix] Password reset", body, email)


def read_token(token: str, *, lock: bool = False) -> tuple[User, str]:
    """The account and the address a link confirms (VerificationError otherwise).
    `lock`: the account's row stays locked until the transaction ends (confirm)."""
    if len(token) > 500:
        raise VerificationError("This link is not valid. Check that it was copied whole.")
    try:
        data = signing.loads(token, salt=_SALT, max_age=LINK_MAX_AGE)
    except signing.SignatureExpired as expired:
        raise VerificationError("This link has expired. Ask for a new one.") from expired
    except (signing.BadSignature, UnicodeDecodeError, ValueError) as bad:
        raise VerificationError("This link is not valid. Check that it was copied whole.") from bad
    if not isinstance(data, dict):
        raise VerificationError("This link is not valid. Check that it was copied whole.")
    user_id = data.get("u")
    users = User.objects.select_for_update() if lock else User.objects.all()
    user = users.filter(pk=user_id, is_active=True).first() if isinstance(user_id, int) else None
    if user is None or user.email != data.get("was") or not isinstance(data.get("to"), str):
        raise VerificationError("This link is no longer valid: the account's email changed.")
    if "pw" not in data:
        # Sent before links carried the mark: refused (a new one is a click away), but
        # not blamed on a password change that never happened.
        raise VerificationError("This link has expired. Ask for a new one.")
    if not constant_time_compare(str(data["pw"]), _password_mark(user)):
        raise VerificationError(
            "This link is no longer valid: the account's password changed since it was "
            "sent. Ask for a new one."
        )
    if data["to"] != user.email:
        if "r" not in data:
            # A change's link sent before links named their request: as above.
            raise VerificationError("This link has expired. Ask for a new one.")
        if data["r"] != _latest_change_request(user):
            raise VerificationError(
                "This link is no longer valid: a newer one was asked for since, to this or "
                "another address. Use the newest link."
            )
    return user, data["to"]


@transaction.atomic
def confirm(token: str, *, ip: str | None) -> User:
    """Act on a link: verify the account's address, or move the account to the new one
    (telling the old address)."""
    user, email = read_token(token, lock=True)
    if email == user.email:
        if user.email_verified_at is None:
            user.email_verified_at = timezone.now()
            user.save(update_fields=["email_verified_at"])
            audit_record(action="user.email_verified", actor=user, target=user, ip=ip)
        return user
    old = user.email
    if User.objects.with_address(email).exclude(pk=user.pk).exists():
        raise VerificationError("That address belongs to another account now.")
    user.email, user.email_verified_at = email, timezone.now()
    try:
        with transaction.atomic():
            user.save(update_fields=["email", "email_verified_at"])
    except IntegrityError as taken:
        raise VerificationError("That address belongs to another account now.") from taken
    changed(user.change_identity)  # the API's copies hold the address (/v1/user/me)
    audit_record(
        action="user.email_changed", actor=user, target=user, ip=ip, metadata={"from": old}
    )
    # What still works for this address's owner if it was not them: a password reset goes
    # to the new address now, and this one's reset form answers that no account uses it;
    # signing in with the new address and their password does, while the password holds.
    _send(
        "[Reminix] Your account's email address was changed",
        f"The email address of your Reminix account was changed from {old} to {email}.\n\n"
        f"When: {user.email_verified_at:%-d %b %Y, %H:%M} UTC\n"
        f"From: {ip or 'an unknown address'}\n\n"
        "If it was you, there is nothing to do.\n\n"
        f"If it was not, someone else can use your account. Sign in now with {email} and "
        "your password, change the address back under Account, and change your password "
        "(that signs out every other session):\n"
        f"{settings.DASHBOARD_URL}{reverse('accounts:login')}\n",
        old,
    )
    return user


def email_confirmed_by_reset(user: User, *, ip: str | None) -> None:
    """A password reset of an unconfirmed account: its link reached the mailbox, so the
    address is confirmed, and every second factor is removed — whoever set one up before
    the mailbox's owner did could otherwise lock them out (the pre-hijacked account)."""
    removed = TotpDevice.objects.filter(user=user).delete()[0]
    removed += Passkey.objects.filter(user=user).delete()[0]
    RecoveryCode.objects.filter(user=user).delete()
    user.email_verified_at = timezone.now()
    user.save(update_fields=["email_verified_at"])
    audit_record(action="user.email_verified", actor=user, target=user, ip=ip)
    if removed:
        changed(user.change_identity)
        audit_record(
            action="user.two_factor_disabled",
            actor=user,
            target=user,
            ip=ip,
            metadata={"via": "password reset of an unconfirmed address"},
        )
        security_notice_send(
            user=user,
            action="user.two_factor_disabled",
            ip=ip,
            detail=(
                "by the password reset that confirmed your address, with any passkeys (a "
                "second factor set up before then may not have been yours)"
            ),
        )
