"""Security notices: the email a person gets when their account's credentials change.

A stolen password or a session left open is used to make itself last: a new passkey, an
authenticator of the thief's own, a personal access token, two-factor turned off. The
owner hears of each change at the account's address, as GitHub and Stripe tell theirs,
with when and from where, so that what they did not do stands out. A notice cannot be
turned off (notifications/ holds the project emails that can), and it names the change,
never a secret: a token's name and hint, a passkey's name.

Sent once the change is committed: a change that is rolled back is no news, and a mail
server that is down never undoes a change (the failure is logged).

Each call site sits beside the change's audit event (rule 2 of STYLE.md: no signals), under
the same action name; NOTICES holds the words for each.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from core.mail import one_line

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notice:
    """What a notice says: its subject, and the sentence that opens it ({detail} is the
    change's own words, such as a token's name)."""

    subject: str
    opening: str


NOTICES: dict[str, Notice] = {
    "user.password_changed": Notice(
        "Your password was changed",
        "The password of your Reminix account was changed{detail}. Every other session "
        "was signed out.",
    ),
    "user.two_factor_enabled": Notice(
        "An authenticator app was added to your account",
        "An authenticator app was set up for two-factor sign-in to your Reminix account.",
    ),
    "user.two_factor_disabled": Notice(
        "Two-factor authentication was turned off",
        "Two-factor sign-in with an authenticator app was turned off for your Reminix "
        "account{detail}, and its recovery codes were removed.",
    ),
    "user.recovery_codes_regenerated": Notice(
        "New recovery codes were made for your account",
        "New recovery codes were made for your Reminix account. The old ones no longer work.",
    ),
    "user.recovery_code_used": Notice(
        "A recovery code was used",
        "A recovery code of your Reminix account was used in place of an authenticator "
        "code{detail}.",
    ),
    "user.passkey_added": Notice(
        "A passkey was added to your account",
        "A passkey{detail} was added to your Reminix account. It signs in without a password.",
    ),
    "user.passkey_removed": Notice(
        "A passkey was removed from your account",
        "A passkey{detail} was removed from your Reminix account.",
    ),
    "personal_token.created": Notice(
        "A personal access token was created",
        "A personal access token{detail} was created for your Reminix account. It can call "
        "the API as you.",
    ),
    "personal_token.networks_changed": Notice(
        "Where a personal access token may be used was changed",
        "The personal access token{detail}.",
    ),
    "personal_token.regenerated": Notice(
        "A personal access token was regenerated",
        "A personal access token{detail} of your Reminix account was given a new secret. "
        "The old secret no longer works.",
    ),
}


# The detail goes into the body, not a header: long enough for what a change names whole
# (a token's name, hint and a full network allowlist); cut at 200, as a header is, the
# network added last by whoever changed it never reached the owner.
DETAIL_MAX = 2000


def security_notice_send(*, user: User, action: str, ip: str | None, detail: str = "") -> None:
    """Tell `user` of `action` (a key of NOTICES) once the transaction commits. `detail`
    names what changed in the notice's opening sentence, such as `“deploy” (…a1b2)`."""
    notice = NOTICES[action]
    when, to = timezone.now(), user.email  # as they are now, not when the mail goes
    transaction.on_commit(
        lambda: _send(notice, to=to, user_id=user.pk, ip=ip, when=when, detail=detail)
    )


def _send(
    notice: Notice, *, to: str, user_id: int, ip: str | None, when: datetime, detail: str
) -> None:
    base = settings.DASHBOARD_URL.rstrip("/")
    told = f" {one_line(detail, limit=DETAIL_MAX)}" if detail else ""
    body = (
        f"{notice.opening.format(detail=told)}\n\n"
        f"When: {when:%-d %b %Y, %H:%M} UTC\n"
        f"From: {ip or 'an unknown address'}\n\n"
        "If it was you, there is nothing to do.\n\n"
        "If it was not, someone else can use your account: reset your password now (that "
        "signs out every other session), then review your passkeys, authenticator and "
        "personal access tokens:\n"
        f"{base}{reverse('accounts:password_reset')}\n"
        f"{base}{reverse('accounts:account_security')}\n"
        f"{base}{reverse('apikeys:personal_token_list')}\n"
    )
    try:
        send_mail(
            subject=one_line(f"[Reminix] {notice.subject}"),
            message=body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[to],
        )
    except Exception as failure:  # the change stands; the failure is logged
        logger.warning("Security notice to user %s not sent (%s)", user_id, type(failure).__name__)
