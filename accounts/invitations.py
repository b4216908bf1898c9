"""Invitations into a project: an owner invites an email with a role, the invitee accepts.

The link's token (`reminix_inv_` and 40 base62 characters) is sent once, by email, and only
its keyed hash is stored. Accepting needs the token and a session of the account whose email
was invited, so nobody becomes a member without their consent, and the owner's answer is the
same whether or not that email has an account. Unaccepted invitations expire after 7 days
(models.INVITATION_LIFETIME); inviting the same email again replaces the pending one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import string

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from accounts.models import INVITATION_LIFETIME, Invitation, Membership, Project, User
from accounts.services import (
    TooManyProjects,
    invitations_withdraw,
    owner_hold,
    project_room_hold,
)
from audit.log import audit_record
from core.invalidation import changed
from core.mail import delivery_address, one_line
from core.row_locks import share

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "reminix_inv_"
_ALPHABET = string.ascii_letters + string.digits
_TOKEN_LENGTH = 40
ASK_AGAIN = "Ask the project’s owner for a new one."


class InvitationError(Exception):
    """An invitation that cannot be accepted (the message says why, to its holder)."""


# Invitations not accepted and not withdrawn (an expired one included: the members page
# lists it, as expired) a project may have. The page lists them all; the hourly limit per
# owner alone would let them pile up for as long as someone keeps sending.
MAX_PENDING_INVITATIONS = 100
TOO_MANY_INVITATIONS = (
    f"This project has {MAX_PENDING_INVITATIONS} invitations waiting for an answer, the most "
    "it may have. Withdraw some (expired ones first) before sending another."
)


# Members one project may have: the members page lists them all, and alert emails go to
# each who opted in. Only an accepted invitation adds one, so that is where it is held.
MAX_MEMBERS_PER_PROJECT = 500
TOO_MANY_MEMBERS = (
    f"This project has {MAX_MEMBERS_PER_PROJECT} members, the most it may have. Remove "
    "someone who no longer needs access before inviting another."
)
FULL_PROJECT = (
    f"This project has {MAX_MEMBERS_PER_PROJECT} members, the most it may have. Ask its "
    "owner to make room, then to invite you again."
)


class TooManyInvitations(Exception):
    """The project has MAX_PENDING_INVITATIONS pending invitations, or
    MAX_MEMBERS_PER_PROJECT members (the message says which)."""


def members_full(project: Project) -> bool:
    return Membership.objects.filter(project=project).count() >= MAX_MEMBERS_PER_PROJECT


def invitations_full(project: Project, *, besides: str) -> bool:
    """Whether `project` has no room for another invitation, not counting those to the
    address `besides` (sending again replaces them)."""
    pending = Invitation.objects.pending().filter(project=project).exclude(email=besides)
    return pending.count() >= MAX_PENDING_INVITATIONS


def _new_token() -> str:
    return TOKEN_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_TOKEN_LENGTH))


def _token_hash(token: str) -> str:
    return hmac.new(
        settings.TOKEN_HASH_KEY.encode(), token.encode("utf-8", "replace"), hashlib.sha256
    ).hexdigest()


def invitation_for_token(token: str) -> Invitation | None:
    """The invitation a link's token stands for, whatever its state (None: no such link)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) != len(TOKEN_PREFIX) + _TOKEN_LENGTH:
        return None
    return (
        Invitation.objects.select_related("project", "invited_by")
        .filter(token_hash=_token_hash(token))
        .first()
    )


def accept_url(token: str) -> str:
    return f"{settings.DASHBOARD_URL}/invitations/{token}/"


@transaction.atomic
def invitation_send(
    *, project: Project, email: str, role: str, by: User, ip: str | None = None
) -> Invitation:
    """Invite `email` into `project` as `role`, and email the link (after the commit).
    NotAnOwner if `by` is not an owner of it by now; TooManyInvitations if the project has
    MAX_PENDING_INVITATIONS (owner_hold's lock of the project's row makes two sent at
    once take turns, so the second counts the first)."""
    owner_hold(project=project, user=by)
    email = delivery_address(email)  # as the account it is for keeps it
    if invitations_full(project, besides=email):
        raise TooManyInvitations(TOO_MANY_INVITATIONS)
    if members_full(project):
        raise TooManyInvitations(TOO_MANY_MEMBERS)
    invitations_withdraw(
        Invitation.objects.pending().filter(project=project, email=email),
        by=by,
        ip=ip,
        reason="replaced by a new invitation",
    )
    now = timezone.now()
    token = _new_token()
    invitation = Invitation.objects.create(
        project=project,
        email=email,
        role=role,
        token_hash=_token_hash(token),
        invited_by=by,
        created_at=now,
        expires_at=now + INVITATION_LIFETIME,
    )
    audit_record(
        action="membership.invitation_sent",
        actor=by,
        project=project,
        target=invitation,
        target_label=email,
        ip=ip,
        metadata={"role": role},
    )
    # Never cut: a name of 150 characters must not push the address out of the line.
    inviter = one_line(invitation.inviter, limit=1000)
    project_name = one_line(project.name)
    role_label = Membership.Role(role).label.lower()
    message = (
        f"{inviter} invited you to join the project “{project_name}” on Reminix as "
        f"{'an' if role_label[0] in 'aeiou' else 'a'} {role_label}.\n\n"
        f"To accept, open this link and sign in (or create an account) with this email "
        f"address:\n{accept_url(token)}\n\n"
        f"The link works once and expires on {invitation.expires_at:%-d %b %Y, %H:%M} UTC. "
        "If you did not expect this invitation, ignore this email: nothing happens unless "
        "you accept.\n"
    )
    # The subject stays short, with the name alone; the mail it opens says the address.
    subject = one_line(f"[Reminix] {by.get_full_name()} invited you to {project_name}")

    def send() -> None:
        try:
            send_mail(
                subject=subject,
                message=message,
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=[email],
            )
        except Exception as failure:  # the invitation stands; the owner can send it again
            logger.warning(
                "Invitation %s: the email could not be sent (%s)",
                invitation.pk,
                type(failure).__name__,
            )

    transaction.on_commit(send)
    return invitation


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, by: User, ip: str | None = None) -> bool:
    """The link stops working at once. Revoking an invitation that has ended (accepted or
    withdrawn meanwhile) does nothing, and is False. NotAnOwner if `by` is not an owner of
    its project by now."""
    owner_hold(project=invitation.project, user=by)
    pending = Invitation.objects.pending().filter(pk=invitation.pk)
    return bool(invitations_withdraw(pending, by=by, ip=ip))


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user: User, ip: str | None = None) -> Membership:
    """Make `user` a member with the invitation's role. InvitationError if the invitation
    was used, revoked or has expired, or was sent to another email."""
    # The inviter's owner membership first, held FOR SHARE, in the order every change of
    # members and roles (and a project's deletion) takes its locks: members' rows, then
    # invitations. Their demotion, their removal or the project's deletion waits for this
    # acceptance, and sees the new member; or it commits first, and this finds them gone.
    inviter_still_owner = invitation.invited_by_id is not None and bool(
        share(
            Membership.objects.filter(
                project_id=invitation.project_id,
                user_id=invitation.invited_by_id,
                role=Membership.Role.OWNER,
            )
        )
    )
    # Then the project's row, FOR NO KEY UPDATE, before the invitation's (as owner_hold
    # and a deletion take them): two acceptances at once take turns, so the second counts
    # the first's member against MAX_MEMBERS_PER_PROJECT.
    Project.objects.select_for_update(no_key=True).filter(pk=invitation.project_id).first()
    locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if locked.accepted_at is not None:
        raise InvitationError("This invitation was accepted already.")
    if locked.revoked_at is not None:
        raise InvitationError(f"This invitation was withdrawn. {ASK_AGAIN}")
    if locked.is_expired():
        raise InvitationError(f"This invitation has expired. {ASK_AGAIN}")
    if not inviter_still_owner:
        # Whoever invited is no longer an owner here: what they sent no longer stands.
        raise InvitationError(f"This invitation was withdrawn. {ASK_AGAIN}")
    if delivery_address(user.email) != delivery_address(locked.email):
        raise InvitationError(
            f"This invitation was sent to {locked.email}. Sign in with that address to accept it."
        )
    locked.accepted_at, locked.accepted_by = timezone.now(), user
    locked.save(update_fields=["accepted_at", "accepted_by"])
    if user.email_verified_at is None:
        # The invitation's link was sent to this address and came back: it is theirs.
        user.email_verified_at = locked.accepted_at
        user.save(update_fields=["email_verified_at"])
        audit_record(action="user.email_verified", actor=user, target=user, ip=ip)
    if not Membership.objects.filter(project=locked.project, user=user).exists():
        if members_full(locked.project):
            raise InvitationError(FULL_PROJECT)
        try:
            project_room_hold(user)
        except (TooManyProjects, PermissionDenied) as refused:
            raise InvitationError(str(refused)) from None
    membership, created = Membership.objects.get_or_create(
        project=locked.project, user=user, defaults={"role": locked.role}
    )
    audit_record(
        action="membership.invitation_accepted",
        actor=user,
        project=locked.project,
        target=membership,
        target_label=user.email,
        ip=ip,
        metadata={"role": membership.role, "already_member": not created},
    )
    changed(user.change_identity)
    return membership
