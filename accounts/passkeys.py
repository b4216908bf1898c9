"""Passkeys (WebAuthn): a second factor after the password, a sign-in of their own, and an
answer to the sudo prompt. The views are in accounts/views/passkeys.py.

- The CBOR, COSE and signature checks are py_webauthn's (Duo Labs); this module decides
  what is asked (resident key and user verification required at registration, known
  credentials excluded) and what a verified answer may do.
- A challenge lives in the session, for one purpose (and one person where it names one),
  is taken out on first use whatever the outcome, and is good for 5 minutes. The one
  exception is the passwordless sign-in's, asked for by anyone signed out: a session for
  each would be a row stored for every POST anyone cared to send. It rides in a signed
  cookie of the browser that asked instead, with its purpose and time, and the browser is
  told to forget it with the answer.
- Whichever way it was kept, a challenge an answer was accepted for is recorded as used
  (UsedPasskeyChallenge): a copied cookie, or two answers sent at once from one session,
  do not use it twice. Only an answer whose signature checks writes that row.
- The relying party is the request's host name (no port), the origin its scheme and host;
  WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS override both behind a proxy.
- A sign count that does not go up (when the authenticator keeps one) means a cloned
  authenticator: the assertion is refused and the refusal audited.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core import signing
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from accounts.models import Passkey, UsedPasskeyChallenge, User
from accounts.security_notices import security_notice_send
from accounts.two_factor import keep_a_second_factor
from audit.log import audit_record
from core.batched_delete import delete_in_batches
from core.counters import throttle_allows
from core.invalidation import changed

RP_NAME = "Reminix"
CHALLENGE_SECONDS = 300
PASSKEYS_PER_PERSON = 20
# Refused answers for one account's passkeys that are written to its audit log, per hour.
PASSKEY_FAILED_ROWS_PER_HOUR = 10
_SESSION_KEY = "passkey_challenge"
# The passwordless sign-in's challenge, signed, in a cookie of its own (see above).
_COOKIE = "passkey_challenge"
_COOKIE_SALT = "accounts.passkeys.sign_in_challenge"
# A used challenge is remembered while one issued then could still be taken: its 5
# minutes, and a margin for the clocks of other hosts.
USED_CHALLENGES_KEPT = timedelta(hours=1)
# What a challenge is for: registration, passwordless sign-in, the sign-in's second step
# after a password, or the sudo prompt. One kind is never accepted for another.
Purpose = Literal["register", "sign_in", "second_factor", "sudo"]
# base64url without padding: a credential id of at most 1,023 bytes.
_CREDENTIAL_ID = re.compile(r"[A-Za-z0-9_-]{16,1400}")
_TRANSPORTS = {t.value for t in AuthenticatorTransport}


class PasskeyRefused(Exception):
    """A passkey answer that was not accepted; the message is for the person."""


@dataclass(frozen=True)
class RelyingParty:
    """Who the browser is asked to make or use a passkey for, and where answers may come from."""

    id: str
    origins: list[str]


def relying_party(request: HttpRequest) -> RelyingParty:
    host = request.get_host()  # checked against ALLOWED_HOSTS
    rp_id = settings.WEBAUTHN_RP_ID or (urlsplit(f"//{host}").hostname or "")
    origins = list(settings.WEBAUTHN_ORIGINS) or [f"{request.scheme}://{host}"]
    return RelyingParty(id=rp_id, origins=origins)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def has_passkey(user: User) -> bool:
    return Passkey.objects.filter(user=user).exists()


# Challenges -----------------------------------------------------------------------------


def _challenge(
    purpose: Purpose, challenge: bytes, user: User | None, **extra: str
) -> dict[str, Any]:
    return {
        "purpose": purpose,
        "challenge": _b64url(challenge),
        "user": user.pk if user is not None else None,
        "at": time.time(),
        **extra,
    }


def _challenge_keep(
    session: SessionBase, purpose: Purpose, challenge: bytes, user: User | None, **extra: str
) -> None:
    session[_SESSION_KEY] = _challenge(purpose, challenge, user, **extra)


def _challenge_take(session: SessionBase, purpose: Purpose, user: User | None) -> dict[str, Any]:
    """The challenge kept for `purpose` (and `user`), taken out of the session: each is
    good for one answer, right or wrong."""
    return _challenge_checked(session.pop(_SESSION_KEY, None), purpose, user)


def challenge_cookie_name() -> str:
    """As the session cookie's name (reminix_dashboard/settings/base.py): with __Host-
    wherever cookies are Secure, so that only this origin, over https, sets it."""
    return f"__Host-{_COOKIE}" if settings.SESSION_COOKIE_SECURE else _COOKIE


def _challenge_signed(purpose: Purpose, challenge: bytes) -> str:
    return signing.Signer(salt=_COOKIE_SALT).sign_object(_challenge(purpose, challenge, None))


def _challenge_unsigned(signed: str | None, purpose: Purpose) -> dict[str, Any]:
    """The challenge in the browser's cookie, if we signed it and it is still young."""
    try:
        kept = signing.Signer(salt=_COOKIE_SALT).unsign_object(signed or "")
    except (signing.BadSignature, ValueError):
        kept = None
    return _challenge_checked(kept, purpose, None)


def _challenge_checked(kept: object, purpose: Purpose, user: User | None) -> dict[str, Any]:
    if (
        not isinstance(kept, dict)
        or kept.get("purpose") != purpose
        or kept.get("user") != (user.pk if user is not None else None)
        or not isinstance(kept.get("at"), int | float)
        or time.time() - kept["at"] > CHALLENGE_SECONDS
    ):
        raise PasskeyRefused("That request has expired or was already used. Try again.")
    return kept


# Registration ---------------------------------------------------------------------------


def registration_options(*, session: SessionBase, user: User, rp: RelyingParty) -> str:
    """The options for navigator.credentials.create(), as JSON; the challenge is kept."""
    existing = list(Passkey.objects.filter(user=user))
    if len(existing) >= PASSKEYS_PER_PERSON:
        raise PasskeyRefused(
            f"You have {PASSKEYS_PER_PERSON} passkeys, the most an account can have. "
            "Remove one first."
        )
    # One user handle per person: an authenticator then keeps one passkey for this account.
    handle = bytes(existing[0].user_handle) if existing else secrets.token_bytes(32)
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=RP_NAME,
        user_name=user.email,
        user_id=handle,
        user_display_name=user.name or user.email,
        timeout=CHALLENGE_SECONDS * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[_descriptor(p) for p in existing],
    )
    _challenge_keep(session, "register", options.challenge, user, handle=_b64url(handle))
    return options_to_json(options)


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    transports = [AuthenticatorTransport(t) for t in passkey.transports if t in _TRANSPORTS]
    return PublicKeyCredentialDescriptor(
        id=_unb64url(passkey.credential_id), transports=transports or None
    )


def passkey_register(
    *,
    session: SessionBase,
    user: User,
    credential: dict[str, Any],
    name: str,
    rp: RelyingParty,
    ip: str | None,
) -> Passkey:
    """Verify the browser's answer to registration_options() and keep the passkey."""
    kept = _challenge_take(session, "register", user)
    try:
        parsed = parse_registration_credential_json(credential)
        verified = verify_registration_response(
            credential=parsed,
            expected_challenge=_unb64url(kept["challenge"]),
            expected_rp_id=rp.id,
            expected_origin=rp.origins,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, TypeError, KeyError):
        raise PasskeyRefused(
            "Your browser's answer could not be verified. Try again, or use another passkey."
        ) from None
    transports = sorted({t.value for t in parsed.response.transports or []})
    try:
        with transaction.atomic():
            passkey = Passkey.objects.create(
                user=user,
                credential_id=_b64url(verified.credential_id),
                public_key=verified.credential_public_key,
                user_handle=_unb64url(kept["handle"]),
                sign_count=verified.sign_count,
                transports=transports,
                name=name or _default_name(user),
            )
            changed(user.change_identity)
            audit_record(
                action="user.passkey_added",
                actor=user,
                target=user,
                ip=ip,
                metadata={"name": passkey.name},
            )
            security_notice_send(
                user=user, action="user.passkey_added", ip=ip, detail=f"“{passkey.name}”"
            )
    except IntegrityError:
        raise PasskeyRefused("That passkey is already registered.") from None
    return passkey


def _default_name(user: User) -> str:
    return f"Passkey {Passkey.objects.filter(user=user).count() + 1}"


# Authentication -------------------------------------------------------------------------


def authentication_options(
    *, session: SessionBase, rp: RelyingParty, purpose: Purpose, user: User
) -> str:
    """The options for navigator.credentials.get(), as JSON, allowing only `user`'s
    passkeys; the challenge is kept in the session."""
    options = generate_authentication_options(
        rp_id=rp.id,
        timeout=CHALLENGE_SECONDS * 1000,
        allow_credentials=[_descriptor(p) for p in Passkey.objects.filter(user=user)],
        user_verification=_verification(purpose),
    )
    _challenge_keep(session, purpose, options.challenge, user)
    return options_to_json(options)


def sign_in_options(*, rp: RelyingParty) -> tuple[str, str]:
    """For the passwordless sign-in: the options for navigator.credentials.get(), as JSON,
    and the signed challenge for this browser's cookie (challenge_cookie_name()). The
    browser offers any passkey it holds for us and must verify the person. Nothing is
    stored: anyone signed out may ask."""
    options = generate_authentication_options(
        rp_id=rp.id,
        timeout=CHALLENGE_SECONDS * 1000,
        user_verification=_verification("sign_in"),
    )
    return options_to_json(options), _challenge_signed("sign_in", options.challenge)


def _verifies_the_person(purpose: Purpose) -> bool:
    """Alone, a passkey is both factors: the device, and the PIN or biometric that unlocks
    it. Sudo asks who is at the keyboard of a session already signed in, which a touch of
    a key left in an unlocked laptop does not tell. After a password, at sign-in, a passkey
    is the second factor, and presence is enough. Every passkey was registered verifying
    its person (registration_options), so each can do so again."""
    return purpose in ("sign_in", "sudo")


def _verification(purpose: Purpose) -> UserVerificationRequirement:
    if _verifies_the_person(purpose):
        return UserVerificationRequirement.REQUIRED
    return UserVerificationRequirement.PREFERRED


def passkey_authenticate(
    *,
    session: SessionBase,
    credential: dict[str, Any],
    rp: RelyingParty,
    purpose: Purpose,
    user: User,
    ip: str | None,
) -> Passkey:
    """Verify the browser's answer to authentication_options(): the passkey of `user`
    used, which passes the step. PasskeyRefused otherwise."""
    kept = _challenge_take(session, purpose, user)
    return _authenticated(kept, credential=credential, rp=rp, purpose=purpose, user=user, ip=ip)


def passkey_sign_in(
    *, signed_challenge: str | None, credential: dict[str, Any], rp: RelyingParty, ip: str | None
) -> Passkey:
    """Verify the browser's answer to sign_in_options(), against the challenge of its
    cookie: the passkey used, whose user may then be signed in. PasskeyRefused otherwise."""
    kept = _challenge_unsigned(signed_challenge, "sign_in")
    return _authenticated(kept, credential=credential, rp=rp, purpose="sign_in", user=None, ip=ip)


def _authenticated(
    kept: dict[str, Any],
    *,
    credential: dict[str, Any],
    rp: RelyingParty,
    purpose: Purpose,
    user: User | None,
    ip: str | None,
) -> Passkey:
    credential_id = credential.get("id")
    if not isinstance(credential_id, str) or not _CREDENTIAL_ID.fullmatch(credential_id):
        raise PasskeyRefused("That is not a passkey answer.")
    passkey = Passkey.objects.select_related("user").filter(credential_id=credential_id).first()
    # Another person's passkey reads the same as one we do not know.
    if passkey is None or (user is not None and passkey.user_id != user.pk):
        raise PasskeyRefused("This passkey is not registered with Reminix. Use another one.")
    if not passkey.user.is_active:
        raise PasskeyRefused("This passkey cannot sign in.")
    try:
        parsed = parse_authentication_credential_json(credential)
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=_unb64url(kept["challenge"]),
            expected_rp_id=rp.id,
            expected_origin=rp.origins,
            credential_public_key=bytes(passkey.public_key),
            # Compared below, after the signature: only a genuine assertion is a clone.
            credential_current_sign_count=0,
            require_user_verification=_verifies_the_person(purpose),
        )
        handle = parsed.response.user_handle
        if handle is not None and bytes(handle) != bytes(passkey.user_handle):
            raise PasskeyRefused("This passkey belongs to another account.")
    except (WebAuthnException, ValueError, TypeError, KeyError, PasskeyRefused) as error:
        _failed(passkey, ip, reason=type(error).__name__)
        raise PasskeyRefused(
            "Your browser's answer could not be verified. Try again, or use another passkey."
        ) from None
    if not _challenge_used(kept["challenge"]):
        _failed(passkey, ip, reason="challenge_reused")
        raise PasskeyRefused("That request has expired or was already used. Try again.")
    with transaction.atomic():
        passkey = Passkey.objects.select_for_update().select_related("user").get(pk=passkey.pk)
        new, old = verified.new_sign_count, passkey.sign_count
        went_back = (new > 0 or old > 0) and new <= old
        if not went_back:
            passkey.sign_count = new
            passkey.last_used_at = timezone.now()
            passkey.save(update_fields=["sign_count", "last_used_at"])
    if went_back:
        _failed(passkey, ip, reason="sign_count_went_back", sign_count=new, expected_above=old)
        raise PasskeyRefused(
            "This passkey was refused: its counter went backwards, which a copied "
            "authenticator does. Use another passkey, and remove this one."
        )
    return passkey


def _challenge_used(challenge: str) -> bool:
    """Record `challenge` as used; False if it was already. The unique digest decides,
    whichever worker gets there first."""
    digest = hashlib.sha256(challenge.encode()).hexdigest()
    try:
        with transaction.atomic():
            UsedPasskeyChallenge.objects.create(digest=digest)
    except IntegrityError:
        return False
    return True


def used_challenges_prune() -> int:
    """Forget the used challenges too old to be taken again anyway; how many went."""
    return delete_in_batches(
        UsedPasskeyChallenge.objects.filter(used_at__lt=timezone.now() - USED_CHALLENGES_KEPT),
        order_by="used_at",
    )


def _failed(passkey: Passkey, ip: str | None, *, reason: str, **extra: int) -> None:
    """The refusal on its owner's audit log, up to PASSKEY_FAILED_ROWS_PER_HOUR an hour:
    a credential id is no secret (a browser sends it with every answer), and made-up
    answers for it wrote a row each, without end. A counter that went backwards is always
    written: only the key or a copy of it signs one, and junk sent first must not hide it."""
    if reason != "sign_count_went_back" and not throttle_allows(
        f"audit-passkey-failed:{passkey.user_id}",
        limit=PASSKEY_FAILED_ROWS_PER_HOUR,
        window_seconds=3600,
    ):
        return
    audit_record(
        action="user.passkey_failed",
        actor=passkey.user,
        target=passkey.user,
        ip=ip,
        metadata={"name": passkey.name, "reason": reason, **extra},
    )


# Managing -------------------------------------------------------------------------------


@transaction.atomic
def passkey_rename(*, passkey: Passkey, name: str, ip: str | None) -> None:
    old, passkey.name = passkey.name, name
    passkey.save(update_fields=["name"])
    audit_record(
        action="user.passkey_renamed",
        actor=passkey.user,
        target=passkey.user,
        ip=ip,
        metadata={"from": old, "to": name},
    )


@transaction.atomic
def passkey_remove(*, passkey: Passkey, ip: str | None) -> None:
    """SecondFactorRequiredError (accounts/two_factor.py) if it is the person's last
    second factor and a project of theirs requires one."""
    keep_a_second_factor(passkey.user, removing_passkey=passkey)
    passkey.delete()
    changed(passkey.user.change_identity)  # the API's copies: a project's two-factor policy
    audit_record(
        action="user.passkey_removed",
        actor=passkey.user,
        target=passkey.user,
        ip=ip,
        metadata={"name": passkey.name},
    )
    security_notice_send(
        user=passkey.user, action="user.passkey_removed", ip=ip, detail=f"“{passkey.name}”"
    )
