"""A second factor for signing in: an authenticator app (TOTP, RFC 6238) and 10 single-use
recovery codes. Where a person enrols, where a code is checked, where a code is spent.

- The seed is encrypted (Fernet, a key derived from TOKEN_HASH_KEY): the database alone
  cannot make codes. Recovery codes are kept as keyed hashes, like API keys.
- A code is good once: the time step of the last accepted code is kept, and a code of
  that step or an earlier one is refused (a code seen over a shoulder cannot be replayed).
- One step of clock drift either way is accepted, as authenticator apps expect.
- Every enrolment, removal, recovery-code use and regeneration is an audit event.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import pyotp
import segno
from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Passkey, Project, RecoveryCode, TotpDevice, User
from accounts.security_notices import security_notice_send
from audit.log import audit_record
from core.invalidation import changed
from core.text_direction import quoted

ISSUER = "Reminix"
RECOVERY_CODES = 10
# Recovery codes: 10 characters from an alphabet without look-alikes, shown as xxxxx-xxxxx.
_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def _fernet() -> Fernet:
    key = hashlib.sha256(b"reminix-totp-seed:" + settings.TOKEN_HASH_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def _seed(device: TotpDevice) -> str:
    return _fernet().decrypt(device.secret_encrypted.encode()).decode()


def _recovery_hash(code: str) -> str:
    normal = "".join(code.lower().split()).replace("-", "")
    return hmac.new(
        settings.TOKEN_HASH_KEY.encode(), b"recovery:" + normal.encode(), hashlib.sha256
    ).hexdigest()


def has_authenticator_app(user: User) -> bool:
    return TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).exists()


def authenticator_of(user: User) -> TotpDevice | None:
    """The person's authenticator app, confirmed or still being set up, if any."""
    return TotpDevice.objects.filter(user=user).first()


def passkeys_of(user: User) -> QuerySet[Passkey]:
    """The person's passkeys, oldest first."""
    return Passkey.objects.filter(user=user)


def has_two_factor(user: User) -> bool:
    """An authenticator app, or a passkey (accounts/passkeys.py)."""
    return has_authenticator_app(user) or Passkey.objects.filter(user=user).exists()


@dataclass(frozen=True)
class Enrolment:
    """What the setup page shows: the seed as text and as a QR code (SVG, drawn here), and
    the unconfirmed device it is (which only the browser that began it may confirm)."""

    secret: str
    uri: str
    qr_svg: str
    device_id: int


class SetupBegunElsewhere(Exception):
    """Another browser of the person's made their one authenticator row at the same moment
    (began a setup, or confirmed one this setup's delete waited for)."""


def enrolment_start(user: User) -> Enrolment:
    """A new, unconfirmed seed for `user` (replacing an unconfirmed one). A confirmed
    device is left alone: remove it first. SetupBegunElsewhere if another browser's setup
    made the person's one row (TotpDevice.user is one-to-one) after this one's delete."""
    secret = pyotp.random_base32()
    TotpDevice.objects.filter(user=user, confirmed_at__isnull=True).delete()
    try:
        with transaction.atomic():
            device = TotpDevice.objects.create(
                user=user, secret_encrypted=_fernet().encrypt(secret.encode()).decode()
            )
    except IntegrityError as taken:
        raise SetupBegunElsewhere from taken
    return _enrolment(user, secret, device)


def enrolment_pending(user: User, device_id: int | None) -> Enrolment | None:
    """The setup begun as `device_id` (what the browser that began it kept), if it is still
    waiting for its first code. Never one begun elsewhere: its key was shown there, maybe
    to someone who had the password, and confirmed here it would be their authenticator."""
    if device_id is None:
        return None
    device = TotpDevice.objects.filter(user=user, pk=device_id, confirmed_at__isnull=True).first()
    if device is None:
        return None
    try:
        return _enrolment(user, _seed(device), device)
    except InvalidToken:  # TOKEN_HASH_KEY changed since: start again
        device.delete()
        return None


def _enrolment(user: User, secret: str, device: TotpDevice) -> Enrolment:
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    svg = segno.make(uri, error="m").svg_inline(scale=4, title="QR code of the setup key")
    return Enrolment(secret=secret, uri=uri, qr_svg=svg, device_id=device.pk)


def _accepts(device: TotpDevice, code: str) -> bool:
    """Whether `code` is this device's code for now (±1 step) and newer than the last one
    accepted; if so, remember its step. Call inside a transaction holding the row."""
    digits = "".join(code.split())
    if len(digits) != 6 or not digits.isascii() or not digits.isdigit():
        return False
    try:
        totp = pyotp.TOTP(_seed(device))
    except InvalidToken:
        return False
    now = timezone.now()
    step_now = int(now.timestamp()) // totp.interval
    for step in (step_now - 1, step_now, step_now + 1):
        if step <= device.last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), digits):
            device.last_step = step
            device.save(update_fields=["last_step"])
            return True
    return False


@transaction.atomic
def enrolment_confirm(
    user: User, code: str, *, device_id: int | None, ip: str | None
) -> list[str] | None:
    """Confirm the pending device `device_id` (the one this browser began: see
    enrolment_pending) with a first code. Returns the new recovery codes (shown once), or
    None if the code is not right, or that setup is not pending any more."""
    if device_id is None:
        return None
    # The person's row before the device, as two_factor_remove takes them: its new codes
    # take that row (_new_recovery_codes), and the other order could deadlock.
    User.objects.select_for_update(no_key=True).filter(pk=user.pk).first()
    device = (
        TotpDevice.objects.select_for_update()
        .filter(user=user, pk=device_id, confirmed_at__isnull=True)
        .first()
    )
    if device is None or not _accepts(device, code):
        return None
    device.confirmed_at = timezone.now()
    device.save(update_fields=["confirmed_at"])
    codes = _new_recovery_codes(user)
    audit_record(action="user.two_factor_enabled", actor=user, target=user, ip=ip)
    changed(user.change_identity)  # the API's copies: a project's two-factor policy
    security_notice_send(user=user, action="user.two_factor_enabled", ip=ip)  # after: mail is slow
    return codes


def _new_recovery_codes(user: User) -> list[str]:
    # Two new sets at once (a form sent twice, two tabs) take turns on the person's row:
    # the second's delete, blocked on the first's new codes, would otherwise skip them
    # once committed, and leave both sets working, one of them shown to nobody.
    User.objects.select_for_update(no_key=True).filter(pk=user.pk).first()
    RecoveryCode.objects.filter(user=user).delete()
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    RecoveryCode.objects.bulk_create(
        RecoveryCode(user=user, code_hash=_recovery_hash(code)) for code in codes
    )
    return codes


@transaction.atomic
def recovery_codes_regenerate(user: User, *, ip: str | None) -> list[str]:
    codes = _new_recovery_codes(user)
    audit_record(action="user.recovery_codes_regenerated", actor=user, target=user, ip=ip)
    security_notice_send(user=user, action="user.recovery_codes_regenerated", ip=ip)
    return codes


def recovery_codes_left(user: User) -> int:
    return RecoveryCode.objects.filter(user=user, used_at__isnull=True).count()


class SecondFactorRequiredError(Exception):
    """Removing this would leave the person without a second factor while projects they
    belong to require one. `projects` names them."""

    def __init__(self, projects: list[str]) -> None:
        super().__init__(", ".join(projects))
        self.projects = projects


def keep_a_second_factor(
    user: User, *, removing_app: bool = False, removing_passkey: Passkey | None = None
) -> None:
    """Refuse (SecondFactorRequiredError) to take away a person's last second factor while
    a project of theirs requires one: they would be locked out of it at once, and their
    PATs refused there. Call inside the removal's transaction: the person's row is locked
    first, so two removals at once cannot each leave the other as the last factor, and an
    owner requiring one (project_set_two_factor_policy, which locks it too) is seen."""
    User.objects.select_for_update(no_key=True).filter(pk=user.pk).first()
    required = list(
        Project.objects.for_user(user)
        .filter(require_two_factor=True)
        .order_by("name")
        .values_list("name", flat=True)
    )
    if not required:
        return
    app_left = not removing_app and has_authenticator_app(user)
    passkeys_left = Passkey.objects.filter(user=user)
    if removing_passkey is not None:
        passkeys_left = passkeys_left.exclude(pk=removing_passkey.pk)
    if not (app_left or passkeys_left.exists()):
        raise SecondFactorRequiredError(required)


def last_factor_message(refusal: SecondFactorRequiredError) -> str:
    names = ", ".join(quoted(name) for name in refusal.projects)
    projects = "project requires" if len(refusal.projects) == 1 else "projects require"
    return (
        f"Not removed: it is your last second factor, and the {projects} one ({names}). "
        "Add another (a passkey or an authenticator app) first, or leave the project."
    )


@transaction.atomic
def two_factor_remove(user: User, *, ip: str | None) -> bool:
    """Turn the authenticator app (and its recovery codes) off. SecondFactorRequiredError
    if it is the person's last factor and a project of theirs requires one."""
    keep_a_second_factor(user, removing_app=True)
    removed, _ = TotpDevice.objects.filter(user=user).delete()
    RecoveryCode.objects.filter(user=user).delete()
    if removed:
        audit_record(action="user.two_factor_disabled", actor=user, target=user, ip=ip)
        changed(user.change_identity)
        security_notice_send(user=user, action="user.two_factor_disabled", ip=ip)
    return bool(removed)


@transaction.atomic
def second_factor_check(user: User, code: str, *, ip: str | None) -> str | None:
    """Check a code from the sign-in's second step (or a sudo prompt): an authenticator
    code, or an unused recovery code, which is then spent. Returns "totp" or "recovery"
    for what passed, None when nothing did."""
    device = (
        TotpDevice.objects.select_for_update().filter(user=user, confirmed_at__isnull=False).first()
    )
    if device is None:
        return None
    if _accepts(device, code):
        return "totp"
    if len(code) > 40:
        return None
    spent = RecoveryCode.objects.filter(
        user=user, code_hash=_recovery_hash(code), used_at__isnull=True
    ).update(used_at=timezone.now())
    if spent:
        left = recovery_codes_left(user)
        audit_record(
            action="user.recovery_code_used",
            actor=user,
            target=user,
            ip=ip,
            metadata={"left": left},
        )
        security_notice_send(
            user=user,
            action="user.recovery_code_used",
            ip=ip,
            detail=f"({left} left; once none are, make new ones on your Security page)",
        )
        return "recovery"
    return None
