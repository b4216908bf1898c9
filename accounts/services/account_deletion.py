"""Deleting a person's account: what it does to their projects, the deletion, and
the last mail to the address."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime

from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from accounts.events import account_deleted
from accounts.models import (
    Membership,
    Passkey,
    Project,
    RecoveryCode,
    SignedInSession,
    TotpDevice,
    User,
)
from accounts.services.membership_locks import MembershipError
from accounts.services.memberships import LastOwner, membership_remove
from accounts.services.project_deletion import project_delete
from audit.log import audit_record
from core.invalidation import changed
from core.text_direction import quoted

logger = logging.getLogger(__name__)


class AccountDeletionRefused(Exception):
    """Deleting the account would leave projects that others use without an owner."""

    def __init__(self, projects: list[Project]) -> None:
        self.projects = projects
        names = ", ".join(quoted(p.name) for p in projects)
        super().__init__(
            f"You are the only owner of {names}, which others are members of: make one of "
            "them an owner (or delete the project) first."
        )


def account_deletion_plan(user: User) -> tuple[list[Project], list[Project], list[Project]]:
    """What deleting `user`'s account does to their projects: (deleted with it: they are
    its only member; left: someone else stays an owner; blocking: they are its only
    owner and others are members, so it must be handed over or deleted first)."""
    deleted, left, blocking = [], [], []
    for membership in Membership.objects.filter(user=user).select_related("project"):
        project = membership.project
        others = Membership.objects.filter(project=project).exclude(user=user)
        if not others.exists():
            deleted.append(project)
        elif membership.is_owner and not others.filter(role=Membership.Role.OWNER).exists():
            blocking.append(project)
        else:
            left.append(project)
    return deleted, left, blocking


@transaction.atomic
def account_delete(*, user: User, ip: str | None = None) -> None:
    """Delete `user`'s account for good: the projects they alone belong to are deleted
    (project_delete), they leave every other (membership_remove: their PATs' client tokens
    there are revoked), their PATs are revoked (account_deleted), their second factors go,
    every session of theirs ends, and the row is kept, inactive and anonymised, so the
    audit trail still names who did what (its events keep the address they had). The
    address is free to sign up again. AccountDeletionRefused if a project others use would
    be left without an owner. The address is told once it commits."""
    # FOR NO KEY UPDATE: a key or client token their PAT is making names them (its
    # creator, its audit event's actor) and holds their membership; FOR UPDATE would make
    # it wait here while this waits for that membership: a deadlock.
    User.objects.select_for_update(no_key=True).filter(pk=user.pk).first()
    deleted, left, blocking = account_deletion_plan(user)
    if blocking:
        raise AccountDeletionRefused(blocking)
    for project in deleted:
        try:
            project_delete(project=project, by=user, ip=ip, if_alone=True)
        except MembershipError:  # someone joined it meanwhile: no longer theirs alone
            raise AccountDeletionRefused([project]) from None
    for project in left:
        membership = Membership.objects.filter(project=project, user=user).first()
        if membership is None:
            continue  # removed meanwhile: nothing to leave
        try:
            membership_remove(membership=membership, by=user, ip=ip)
        except LastOwner:  # its other owners left meanwhile: now theirs alone
            raise AccountDeletionRefused([project]) from None
        except MembershipError:
            pass  # removed meanwhile: nothing to leave
    account_deleted.send(sender=User, user=user, ip=ip)
    TotpDevice.objects.filter(user=user).delete()
    RecoveryCode.objects.filter(user=user).delete()
    Passkey.objects.filter(user=user).delete()
    sessions = SignedInSession.objects.filter(user=user)
    Session.objects.filter(session_key__in=sessions.values("session_key")).delete()
    sessions.delete()
    address = user.email
    audit_record(
        action="user.deleted",
        actor=user,
        target=user,
        ip=ip,
        metadata={
            "projects_deleted": [p.name for p in deleted],
            "projects_left": [p.name for p in left],
        },
    )
    user.email = _address_of_deleted(user)
    user.name = ""
    user.is_active = False
    user.email_verified_at = None
    user.set_unusable_password()
    user.save(update_fields=["email", "name", "is_active", "email_verified_at", "password"])
    changed(user.change_identity)
    when = timezone.now()
    transaction.on_commit(lambda: _tell_deleted_account(address, when=when, ip=ip))


def _address_of_deleted(user: User) -> str:
    """Where a deleted account is kept: an address no mail reaches, its own. Sign-up
    refuses .invalid addresses (core.validators.mailable_address); one signed up with this
    address before that was refused must not stop the deletion on the unique index."""
    address = f"deleted-{user.pk}@deleted.invalid"
    if User.objects.with_address(address).exclude(pk=user.pk).exists():
        address = f"deleted-{user.pk}-{secrets.token_hex(4)}@deleted.invalid"
    return address


def _tell_deleted_account(address: str, *, when: datetime, ip: str | None) -> None:
    try:
        send_mail(
            subject="[Reminix] Your account was deleted",
            message=(
                "Your Reminix account was deleted, as you asked. Your personal access tokens "
                "were revoked, every session of yours was signed out, and the projects you "
                "alone belonged to were deleted with their API keys.\n\n"
                f"When: {when:%-d %b %Y, %H:%M} UTC\n"
                f"From: {ip or 'an unknown address'}\n\n"
                "If you did not ask for this, someone who could sign in as you did it: "
                "change this password wherever else you use it. Projects you shared with "
                "others were not deleted; their owners can invite you again.\n"
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[address],
        )
    except Exception as failure:  # noqa: BLE001 - the deletion stands; logged
        logger.warning("Account deletion notice not sent (%s)", type(failure).__name__)
