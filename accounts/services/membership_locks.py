"""That the person asking may still act in a project, held until their change
commits: owner_hold for an owner's change, member_hold for a member's, and the locks the
changes of roles and members take; the refusals when they may not (MembershipError)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from accounts.models import Membership, Project, User
from core.row_locks import key_share, share

NOT_AN_OWNER = "Only a project owner can do this."
NOT_A_MEMBER = "You are no longer a member of this project."


class MembershipError(Exception):
    """A membership change that would leave a project in a bad state."""


class NotAnOwner(MembershipError, PermissionDenied):
    """The person asking for an owner's change is not an owner of the project (any more).

    A PermissionDenied too: wherever it escapes a view, Django answers the 403 page that
    project_owner_required gives, so a view that forgot the decorator fails closed (403),
    not with a 500."""

    def __init__(self) -> None:
        super().__init__(NOT_AN_OWNER)


class NoLongerAMember(MembershipError):
    """The person asking for a change in a project is not a member of it (any more)."""

    def __init__(self) -> None:
        super().__init__(NOT_A_MEMBER)


def _lock_owners(project: Project) -> dict[int, int]:
    """The project's owners, their rows locked (user id -> membership id): two owners
    cannot demote or remove each other at the same moment and leave the project with
    none, and an owner who was just demoted cannot act as one any more.

    FOR NO KEY UPDATE: these changes wait for each other and for an owner's change in
    progress (owner_hold), not for the owners' key changes and revocations (member_hold),
    which have nothing to do with someone else's role. Removing an owner then locks their
    row FOR UPDATE (_current), which does wait for theirs."""
    rows = (
        Membership.objects.select_for_update(no_key=True)
        .filter(project=project, role=Membership.Role.OWNER)
        .order_by("pk")  # one order for everyone who locks them: no two wait on each other
        .values_list("user_id", "pk")
    )
    return dict(rows)


def owner_hold(*, project: Project, user: User) -> None:
    """First in the transaction of every owner's change (after the owner's own row, where a
    change holds it: project_set_two_factor_policy): `user` is an owner of `project`
    now (NotAnOwner otherwise; NoLongerAMember if no member at all any more), and stays
    one until the change commits. Their own row is held FOR SHARE, which the lock of the
    changes of roles and members (_lock_owners) waits for: a demotion or removal of `user`
    that committed first is seen here, and one asked for meanwhile waits for this change
    to commit, so nothing someone does as an owner commits after their demotion. Only
    their row: everyone's key changes and revocations (member_hold) do not wait for it.

    Then the project's row, FOR NO KEY UPDATE: owners' changes to one project take turns
    (two owners saving its origins at once, each replacing the list, would otherwise
    both insert one, and the second fail on the unique constraint). That lock holds up
    no insert naming the project (usage, client tokens: FOR KEY SHARE) and no read."""
    if not share(Membership.objects.filter(project=project, user=user, role=Membership.Role.OWNER)):
        raise _not_an_owner(project, user)
    Project.objects.select_for_update(no_key=True).filter(pk=project.pk).first()


def _not_an_owner(project: Project, user: User) -> MembershipError:
    """Why `user` may not act as an owner of `project`: they are a member and no owner
    (NotAnOwner: 403, as to any member), or no member at all any more (NoLongerAMember: to
    them the project is gone, 404, as their next request finds it)."""
    if Membership.objects.filter(project=project, user=user).exists():
        return NotAnOwner()
    return NoLongerAMember()


def member_hold(*, project: Project, user: User) -> int:
    """First in the transaction of a change a person makes in `project` (a key made,
    rolled or revoked; a client token their PAT mints): they are a member now
    (NoLongerAMember otherwise), and stay one until the change commits. Their membership
    is held FOR KEY SHARE, which membership_remove's lock waits for: either the change
    commits first, and the owners see it as they see any, or the removal does, and the
    change is refused. Their other changes, and everyone's reads, do not wait for it.
    Returns the membership's id."""
    held = key_share(Membership.objects.filter(project=project, user=user))
    if not held:
        raise NoLongerAMember
    return int(held[0])


def _current(membership: Membership) -> Membership:
    """The membership as it is now, locked (it may have been removed meanwhile).

    Its row only (OF self): FOR UPDATE would lock the joined project's and person's rows
    too, which every write naming them checks when it commits (an audit event, a client
    token: their foreign keys), and a change holding such a write would deadlock with it."""
    current = (
        Membership.objects.select_for_update(of=("self",))
        .select_related("user", "project")
        .filter(pk=membership.pk)
        .first()
    )
    if current is None:
        raise MembershipError(f"{membership.user.email} is no longer a member of this project.")
    return current
