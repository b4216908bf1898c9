"""Tokens reported as leaked by anyone who finds one (POST /v1/credentials/revoke, as
GitHub's credential-revocation API): each working one is revoked at once and its owners
are told where the report came from. Nothing is answered about which were real.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import InterfaceError, OperationalError, transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from apikeys.models import ApiKey, ClientToken, PersonalAccessToken, Token
from apikeys.services import api_key_end_previous_secret, token_revoke
from apikeys.tokens import TokenKind, token_hash, token_kind
from core.after_answer import after_answer
from core.mail import one_line
from core.redact import redact_tokens_escaped
from notifications.recipients import NobodyReached, send_to_each

logger = logging.getLogger(__name__)

MODELS: dict[TokenKind, type[ApiKey] | type[ClientToken] | type[PersonalAccessToken]] = {
    TokenKind.API_KEY: ApiKey,
    TokenKind.CLIENT_TOKEN: ClientToken,
    TokenKind.PERSONAL_ACCESS_TOKEN: PersonalAccessToken,
}
ACTIONS = {
    TokenKind.API_KEY: "api_key.revoked",
    TokenKind.CLIENT_TOKEN: "client_token.revoked",
    TokenKind.PERSONAL_ACCESS_TOKEN: "personal_token.revoked",
}


# At most one email per project (or person) per hour, however many tokens are reported:
# anyone can collect client tokens from a customer's app and report them by the hundred.
MAIL_EVERY_SECONDS = 3600
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


@dataclass(frozen=True)
class Reporter:
    """Where a report came from, as the owners' email and the audit event tell it."""

    ip: str | None
    user_agent: str

    def describe(self) -> str:
        # Printable ASCII only, short and quoted: it is the reporter's text in our email.
        # Any token in it is cut first (whole, before the cut to 60 leaves most of one):
        # the owners' email and the audit event are places a token is never written.
        agent = " ".join(_UNPRINTABLE.sub(" ", redact_tokens_escaped(self.user_agent)).split())[:60]
        return f'{self.ip or "an unknown address"} (User-Agent: "{agent}")'


def tokens_revoke_reported(*, secrets: Iterable[str], reporter: Reporter) -> int:
    """Revoke every working token among `secrets`. Strings that are not a token of ours
    (wrong shape or checksum) are dropped without a database query. Returns how many were
    revoked, for the logs only: the reporter is never told."""
    digests: dict[str, TokenKind] = {}
    for secret in secrets:
        kind = token_kind(secret)
        if kind is not None:
            digests[token_hash(secret)] = kind
    revoked = 0
    for digest, kind in digests.items():
        try:
            with transaction.atomic():
                token = MODELS[kind].objects.active().filter(token_hash=digest).first()
                if token is None and kind is TokenKind.API_KEY:
                    if _end_reported_previous_secret(digest, reporter):
                        revoked += 1
                    continue
                if token is None or not _revoke_reported(token, kind, reporter):
                    continue
                revoked += 1
                if kind is not TokenKind.CLIENT_TOKEN:  # an hour's browser token: audit only
                    transaction.on_commit(partial(_tell_owners_after_answer, token, reporter))
        except (OperationalError, InterfaceError):
            raise  # the database is away: the reporter gets 503 and may try again
        except Exception:
            # Whatever went wrong with a real token, the reporter's answer must not differ.
            logger.exception("Could not revoke a reported %s", kind.label)
    if revoked:
        logger.warning("Revoked %d token(s) reported as leaked from %s", revoked, reporter.ip)
    return revoked


def _revoke_reported(token: Token, kind: TokenKind, reporter: Reporter) -> bool:
    project = getattr(token, "project", None)
    return token_revoke(
        token,
        action=ACTIONS[kind],
        by=None,
        project=project,
        ip=reporter.ip,
        metadata={"via": "reported as leaked", "reported_from": reporter.describe()},
    )


def _end_reported_previous_secret(digest: str, reporter: Reporter) -> bool:
    """The secret a rolled key still accepts during its overlap: it alone stops now; the
    key's new secret was not reported and keeps working."""
    api_key = (
        ApiKey.objects.active()
        .filter(previous_token_hash=digest, previous_expires_at__gt=timezone.now())
        .select_related("project")
        .first()
    )
    if api_key is None:
        return False
    ended = api_key_end_previous_secret(
        api_key=api_key, by=None, ip=reporter.ip, via="reported as leaked"
    )
    if ended:
        # The service ended it on its own copy of the key: this one still holds the
        # overlap's end, a day ahead, which the email would give as the time it stopped.
        api_key.refresh_from_db(fields=["previous_expires_at"])
        transaction.on_commit(
            partial(_tell_owners_after_answer, api_key, reporter, previous_secret=True)
        )
    return ended


# The call logs' Caller for the token's own calls (usage.key_usage.CALLER_KEY and
# usage.forms.CALLER_TOKEN: usage sits above apikeys, so it is said again here; the leak
# email's test opens the link and checks it lists those calls).
OWN_CALLS = {"key": "key", "pat": "token"}


def _usage_url(token: Token) -> str:
    """The calls made with the token itself, where the owners look for calls they do not
    recognise (a reported client token is audited, not mailed): what a leaked secret did,
    the client tokens minted with it among them as its POSTs to /v1/client-tokens, not the
    calls of its users' browsers, which would bury them.
    """
    base = settings.DASHBOARD_URL.rstrip("/")
    if isinstance(token, PersonalAccessToken):
        page = reverse("usage:personal_token_usage", kwargs={"token_id": token.pk})
        return f"{base}{page}?caller={OWN_CALLS['pat']}"
    assert isinstance(token, ApiKey)
    page = reverse("usage:api_key_usage", kwargs={"slug": token.project.slug, "key_id": token.pk})
    return f"{base}{page}?caller={OWN_CALLS['key']}"


def _recipients(token: Token) -> list[str]:
    if isinstance(token, PersonalAccessToken):
        return [token.user.email]
    assert isinstance(token, ApiKey | ClientToken)
    return list(
        Membership.objects.filter(
            project_id=token.project_id, role=Membership.Role.OWNER
        ).values_list("user__email", flat=True)
    )


def _tell_owners_after_answer(
    token: Token, reporter: Reporter, *, previous_secret: bool = False
) -> None:
    """Hand the owners' email to the after-answer thread (core.after_answer). Sent at each
    revocation's commit, on the reporter's request, it came before the next token of the
    report was even looked at: a batch of real keys (GitHub's scanning reports batches)
    waited for a mail each, 10 s each with the mail server down, and past the worker's
    timeout the keys after that point were never revoked."""
    after_answer(
        partial(_tell_owners, token, reporter, previous_secret=previous_secret),
        what="leak report notice",
    )


def _tell_owners(token: Token, reporter: Reporter, *, previous_secret: bool = False) -> None:
    """After the revocation committed, at most once an hour per project or person. A mail
    that fails is logged: the token is revoked whatever happens here, and the reporter's
    answer never depends on it."""
    try:
        if isinstance(token, ApiKey | ClientToken):
            scope, where = f"project:{token.project_id}", f"the project “{token.project.name}”"
        else:
            scope, where = f"user:{getattr(token, 'user_id', '')}", "your account"
        told = f"reported-mail:{scope}"
        if not cache.add(told, 1, timeout=MAIL_EVERY_SECONDS):
            return  # told within the hour; the audit log lists every revocation
        name = getattr(token, "name", "") or getattr(token, "public_id", "")
        calls = _usage_url(token)
        if previous_secret:
            assert isinstance(token, ApiKey)
            subject = "[Reminix] The old secret of a rolled API key was reported as leaked"
            message = (
                f"Someone reported the old secret {token.previous_hint} of the API key "
                f"“{one_line(name)}” of {one_line(where)} as leaked, from "
                f"{reporter.describe()}. It was still working after the key was rolled; "
                f"it stopped at once ({token.previous_expires_at:%-d %b %Y, %H:%M} UTC), "
                "with the client tokens minted with it. The key's current secret, "
                f"{token.hint}, was not reported and keeps working.\n\n"
                f"Look at the key's calls for any you do not recognise:\n{calls}\n"
            )
        else:
            noun = token.noun
            article = "An" if noun[0] in "AEIOUaeiou" else "A"
            subject = one_line(f"[Reminix] {article} {noun} was reported as leaked and is revoked")
            message = (
                f"Someone reported the {noun} “{one_line(name)}” ({token.hint}) of "
                f"{one_line(where)} as leaked, from {reporter.describe()}. It was revoked at "
                f"once ({token.revoked_at:%-d %b %Y, %H:%M} UTC): calls with it now get "
                "401 expired_api_key.\n\n"
                "If something still depends on it, create a new one in the dashboard, and "
                f"look at its calls for any you do not recognise:\n{calls}\n\n"
                "Tokens reported in the next hour are revoked too, and listed in the audit "
                "log, without another email.\n"
            )
        # Each owner in a message of their own (notifications.recipients.send_to_each):
        # in one to them all, an address the mail server refused (a mailbox gone) stopped
        # the message, and no owner heard of it.
        try:
            send_to_each(
                _recipients(token),
                lambda to: send_mail(
                    subject=subject,
                    message=message,
                    from_email=settings.DEFAULT_FROM_EMAIL,
                    recipient_list=to,
                ),
            )
        except NobodyReached:
            # The hour's email reached nobody (the mail server down): not counted, so the
            # next token reported tells them.
            cache.delete(told)
            raise
    except Exception:
        logger.exception("Could not email the owners of a reported %s", token.noun)
