"""A project's members: added, removed or leaving, their roles, the project handed
to another owner, and the invitations withdrawn with an owner who stops being one."""

from __future__ import annotations

from django.db import models, transaction
from django.utils import timezone

from accounts.models import Invitation, Membership, Project, User
from accounts.services.membership_locks import (
    MembershipError,
    _current,
    _lock_owners,
    _not_an_owner,
    owner_hold,
)
from audit.log import audit_record
from core.invalidation import changed

LAST_OWNER = "A project needs at least one owner; make another member an owner first."


class LastOwner(MembershipError):
    """The change would leave the project without an owner."""

    def __init__(self) -> None:
        super().__init__(LAST_OWNER)


@transaction.atomic
def membership_add(
    *, project: Project, user: User, role: str, by: User, ip: str | None = None
) -> Membership:
    owner_hold(project=project, user=by)
    if Membership.objects.filter(project=project, user=user).exists():
        raise MembershipError(f"{user.email} is already a member of this project.")
    membership = Membership.objects.create(project=project, user=user, role=role)
    changed(user.change_identity)
    audit_record(
        action="membership.added",
        actor=by,
        project=project,
        target=membership,
        target_label=user.email,
        ip=ip,
        metadata={"role": role},
    )
    return membership


def _withdraw_invitations_by(
    project: Project, user: User, *, by: User, ip: str | None = None
) -> None:
    """Invitations a person sent end when they stop being an owner: a removed or demoted
    owner must not come back through an invitation to another address of theirs. Each is
    in the audit log as withdrawn, by `by` (who made the change), as one withdrawn on the
    members page is: an owner sees why it left the list."""
    invitations_withdraw(
        Invitation.objects.pending().filter(project=project, invited_by=user),
        by=by,
        ip=ip,
        reason="its sender is no longer an owner",
    )


def invitations_withdraw(
    invitations: models.QuerySet[Invitation], *, by: User, ip: str | None, reason: str = ""
) -> int:
    """End these pending invitations now, one `membership.invitation_revoked` event each,
    saying why when it was not an owner's own choice (`reason`). Only those this call
    ended (a project has at most a hundred pending): the one way an invitation is
    withdrawn, on the members page (invitation_revoke) or as a consequence of another
    change, so that every withdrawal is in the audit log alike. How many it ended."""
    ended = list(
        invitations.select_related("project")
        .select_for_update(of=("self",), no_key=True)
        .order_by("pk")
    )
    Invitation.objects.filter(pk__in=[i.pk for i in ended], revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    for invitation in ended:
        audit_record(
            action="membership.invitation_revoked",
            actor=by,
            project=invitation.project,
            target=invitation,
            target_label=invitation.email,
            ip=ip,
            metadata={"reason": reason} if reason else None,
        )
    return len(ended)


@transaction.atomic
def membership_remove(*, membership: Membership, by: User, ip: str | None = None) -> None:
    """Remove a member, or (`by` is the member) leave. Their access to the project, and
    their tokens' access, ends at once, for good for the client tokens their PATs minted
    there: those die with the membership they were minted in, even if the person is added
    again (ClientToken.end_reason_at), with no statement that grows with their number.
    Never the last owner."""
    owners = _lock_owners(membership.project)
    membership = _current(membership)
    leaving = membership.user_id == by.pk
    if not leaving and by.pk not in owners:
        raise _not_an_owner(membership.project, by)
    if membership.is_owner and list(owners.values()) == [membership.pk]:
        raise LastOwner
    audit_record(
        action="membership.left" if leaving else "membership.removed",
        actor=by,
        project=membership.project,
        target=membership,
        target_label=membership.user.email,
        ip=ip,
    )
    _withdraw_invitations_by(membership.project, membership.user, by=by, ip=ip)
    membership.delete()
    # The person's PATs, and the client tokens they minted, lose the project at once.
    changed(membership.user.change_identity)


@transaction.atomic
def membership_set_role(
    *, membership: Membership, role: str, by: User, ip: str | None = None
) -> Membership:
    """Make a member an owner, or an owner a member (never the last owner)."""
    owners = _lock_owners(membership.project)
    if by.pk not in owners:
        raise _not_an_owner(membership.project, by)
    membership = _current(membership)
    if membership.role == role:
        return membership
    if membership.is_owner and list(owners.values()) == [membership.pk]:
        raise LastOwner
    old, membership.role = membership.role, role
    membership.save(update_fields=["role"])
    audit_record(
        action="membership.role_changed",
        actor=by,
        project=membership.project,
        target=membership,
        target_label=membership.user.email,
        ip=ip,
        metadata={"from": old, "to": role},
    )
    if old == Membership.Role.OWNER:
        _withdraw_invitations_by(membership.project, membership.user, by=by, ip=ip)
    changed(membership.user.change_identity)
    return membership


@transaction.atomic
def project_transfer_ownership(
    *, project: Project, to: Membership, by: Membership, ip: str | None = None
) -> None:
    """`to` becomes an owner and `by` (an owner) a member, in one step."""
    if by.user_id not in _lock_owners(project):
        raise _not_an_owner(project, by.user)
    to, by = _current(to), _current(by)
    if to.pk == by.pk:
        raise MembershipError("Choose another member to hand the project to.")
    to.role, by.role = Membership.Role.OWNER, Membership.Role.MEMBER
    to.save(update_fields=["role"])
    by.save(update_fields=["role"])
    audit_record(
        action="membership.ownership_transferred",
        actor=by.user,
        project=project,
        target=to,
        target_label=to.user.email,
        ip=ip,
    )
    _withdraw_invitations_by(project, by.user, by=by.user, ip=ip)
    changed(to.user.change_identity)
    changed(by.user.change_identity)
