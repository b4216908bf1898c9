"""Writes for users, projects and memberships. Each one is a transaction with its audit event."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime
from functools import partial

from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.exceptions import PermissionDenied
from django.core.mail import EmailMessage, get_connection, send_mail
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.events import account_deleted, project_created, project_deleted
from accounts.models import (
    AllowedOrigin,
    Invitation,
    Membership,
    Passkey,
    Project,
    RecoveryCode,
    SignedInSession,
    TotpDevice,
    User,
)
from accounts.two_factor import has_two_factor
from audit.log import audit_record
from core.after_answer import after_answer
from core.invalidation import changed
from core.mail import one_line
from core.row_locks import key_share, share

logger = logging.getLogger(__name__)

LAST_OWNER = "A project needs at least one owner; make another member an owner first."
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


class LastOwner(MembershipError):
    """The change would leave the project without an owner."""

    def __init__(self) -> None:
        super().__init__(LAST_OWNER)


class NoLongerAMember(MembershipError):
    """The person asking for a change in a project is not a member of it (any more)."""

    def __init__(self) -> None:
        super().__init__(NOT_A_MEMBER)


def _unique_slug(name: str) -> str:
    base = slugify(name)[:48].strip("-") or "project"
    slug = base
    while Project.objects.filter(slug=slug).exists():
        slug = f"{base}-{secrets.token_hex(3)}"
    return slug


# Projects one person may be a member of. Every dashboard page lists them (the project
# switcher), and so does the personal access token form; nothing else bounds them.
MAX_PROJECTS_PER_PERSON = 100
TOO_MANY_PROJECTS = (
    f"You are a member of {MAX_PROJECTS_PER_PERSON} projects, the most a person may be. "
    "Leave or delete one you no longer need first."
)


ACCOUNT_DELETED = "This account has been deleted."


class TooManyProjects(Exception):
    """The person is a member of MAX_PROJECTS_PER_PERSON projects (TOO_MANY_PROJECTS)."""


def projects_full(user: User) -> bool:
    return Membership.objects.filter(user=user).count() >= MAX_PROJECTS_PER_PERSON


def project_room_hold(user: User) -> None:
    """Room for one more project of `user`, or TooManyProjects. Two at once at one below
    the cap (two creates, an accepted invitation) take turns on the person's row (FOR NO
    KEY UPDATE: the inserts of their memberships do not wait for it). PermissionDenied if
    the account was deleted, by now: account_delete holds the same row, and a request
    that read the person before it committed must not make the deleted account a member
    (an owner of a project its last real owner could then leave)."""
    if not User.objects.select_for_update(no_key=True).filter(pk=user.pk, is_active=True).first():
        raise PermissionDenied(ACCOUNT_DELETED)
    if projects_full(user):
        raise TooManyProjects(TOO_MANY_PROJECTS)


@transaction.atomic
def project_create(*, name: str, owner: User, ip: str | None = None) -> Project:
    """A new project with `owner` as its first owner. The apps above announce what a new
    project starts with (agents: the echo agent `my-agent`) on `project_created`.
    TooManyProjects if `owner` is a member of MAX_PROJECTS_PER_PERSON projects."""
    project_room_hold(owner)
    slug = _unique_slug(name)
    try:
        with transaction.atomic():
            project = Project.objects.create(name=name.strip(), slug=slug)
    except IntegrityError:
        # Another project took the slug since it was checked (two sign-ups of "Ada" at
        # once): a suffixed one, as for any taken slug, rather than a 500.
        if not Project.objects.filter(slug=slug).exists():
            raise
        project = Project.objects.create(
            name=name.strip(), slug=f"{slug[:48]}-{secrets.token_hex(3)}"
        )
    Membership.objects.create(user=owner, project=project, role=Membership.Role.OWNER)
    project_created.send(sender=Project, project=project)
    audit_record(action="project.created", actor=owner, project=project, target=project, ip=ip)
    return project


@transaction.atomic
def project_rename(*, project: Project, name: str, by: User, ip: str | None = None) -> Project:
    owner_hold(project=project, user=by)
    old = project.name
    project.name = name.strip()
    project.save(update_fields=["name"])
    changed(project.change_identity)
    audit_record(
        action="project.renamed",
        actor=by,
        project=project,
        target=project,
        ip=ip,
        metadata={"from": old, "to": project.name},
    )
    return project


@transaction.atomic
def user_sign_up(
    *,
    email: str,
    password: str | None = None,
    password_hash: str | None = None,
    name: str = "",
    ip: str | None = None,
    verified: bool = False,
) -> User:
    """A new user and their first project. `verified`: the address is known to be theirs
    already (an invitation's link reached it); otherwise a link confirms it. The password
    in clear, or `password_hash` (make_password's) where it was hashed already."""
    if (password is None) == (password_hash is None):
        raise ValueError("A sign-up takes a password or its hash, not both or neither.")
    user = User.objects.create_user(
        email=email,
        password=password,
        password_hash=password_hash,
        name=name.strip(),
        email_verified_at=timezone.now() if verified else None,
    )
    audit_record(action="user.signed_up", actor=user, target=user, ip=ip)
    first_name = (user.name.split()[0][:60] + "'s project") if user.name else "My first project"
    project_create(name=first_name, owner=user, ip=ip)
    return user


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
) -> None:
    """End these pending invitations now, one `membership.invitation_revoked` event each,
    saying why when it was not an owner's own choice (`reason`). Only those this call
    ended (a project has at most a hundred pending): the one way an invitation is
    withdrawn, on the members page (invitation_revoke) or as a consequence of another
    change, so that every withdrawal is in the audit log alike."""
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


MAX_POLICY_DAYS = 366


@transaction.atomic
def project_set_allowed_origins(
    *, project: Project, origins: list[str], by: User, ip: str | None = None
) -> Project:
    """Which browser origins may call the Client API with this project's client tokens."""
    owner_hold(project=project, user=by)
    old = project.allowed_origins
    project.origins.all().delete()
    AllowedOrigin.objects.bulk_create(AllowedOrigin(project=project, origin=o) for o in origins)
    changed(project.change_identity)
    audit_record(
        action="project.origins_changed",
        actor=by,
        project=project,
        target=project,
        ip=ip,
        metadata={"from": old, "to": origins},
    )
    return project


@transaction.atomic
def project_set_key_policy(
    *,
    project: Project,
    max_key_days: int | None,
    max_pat_days: int | None,
    by: User,
    leaked_key_action: str | None = None,
    ip: str | None = None,
) -> bool:
    """The longest an API key or a personal access token may live, for this project
    (None: no maximum), and what happens to a key of it found in public (unchanged when
    None). False (nothing recorded) if it is all as it was."""
    owner_hold(project=project, user=by)
    for days in (max_key_days, max_pat_days):
        if days is not None and not 1 <= days <= MAX_POLICY_DAYS:
            raise ValueError(f"A maximum lifetime is from 1 to {MAX_POLICY_DAYS} days.")
    action = leaked_key_action or project.leaked_key_action
    if action not in Project.LeakedKeyAction.values:
        raise ValueError(f"Unknown action for a leaked key: {action}")
    before = {
        "keys": project.max_key_lifetime_days,
        "pats": project.max_pat_lifetime_days,
        "leaked": project.leaked_key_action,
    }
    after = {"keys": max_key_days, "pats": max_pat_days, "leaked": action}
    if before == after:
        return False
    project.max_key_lifetime_days, project.max_pat_lifetime_days = max_key_days, max_pat_days
    project.leaked_key_action = action
    project.save(
        update_fields=["max_key_lifetime_days", "max_pat_lifetime_days", "leaked_key_action"]
    )
    # PATs are checked against it on every call in this project, copies included.
    changed(project.change_identity)
    audit_record(
        action="project.key_policy_changed",
        actor=by,
        project=project,
        target=project,
        ip=ip,
        metadata={"from": before, "to": after},
    )
    return True


class PolicyRefused(ValueError):
    """The owner asking for a policy does not meet it themselves."""


@transaction.atomic
def project_set_two_factor_policy(
    *, project: Project, required: bool, by: User, ip: str | None = None
) -> bool:
    """Require (or stop requiring) a second factor of every member. The owner turning it on
    must have one, so that they do not lock themselves out. False if nothing changed."""
    # The owner's row, as keep_a_second_factor locks it before a factor goes: their last
    # one cannot be removed between this check and the commit. Before owner_hold, as an
    # account's deletion takes the person's row before their memberships: the other way
    # round, the two deadlocked when someone did both at once.
    User.objects.select_for_update(no_key=True).filter(pk=by.pk).first()
    owner_hold(project=project, user=by)
    if required and not has_two_factor(by):
        raise PolicyRefused(
            "Turn on two-factor authentication for your own account first, so that the "
            "policy does not lock you out."
        )
    if project.require_two_factor == required:
        return False
    project.require_two_factor = required
    project.save(update_fields=["require_two_factor"])
    changed(project.change_identity)  # every PAT call into it is checked again
    audit_record(
        action="project.two_factor_policy_changed",
        actor=by,
        project=project,
        target=project,
        ip=ip,
        metadata={"required": required},
    )
    return True


@transaction.atomic
def project_delete(
    *, project: Project, by: User, ip: str | None = None, if_alone: bool = False
) -> None:
    """Delete `project` for everyone, at once and for good: every API key and client token
    of it is revoked (the next call with one gets 401 on every worker), its webhook
    endpoints stop, pending invitations are withdrawn and every member loses it (their
    PATs with it). Owners only (NotAnOwner; NoLongerAMember once it is deleted). Its rows
    stay, so the usage log and the audit trail keep their retention and the slug is never
    handed to someone else. The members are emailed once it commits. `if_alone`: only if
    `by` is its one member (MembershipError otherwise: someone joined meanwhile).

    Locks, in the order every change of members and roles takes them: the owners' rows
    first (_lock_owners), in a statement of their own, so that a member added or an
    invitation accepted meanwhile (each holds its owner's row) commits first and is seen
    by the next statement, which locks every member's row. A key a member is making
    (member_hold) then finishes first and is revoked with the rest, or waits and is
    refused. owner_hold comes last: an owner's change in progress holds its own row and
    waits for the project's, which owner_hold takes. A second deletion waits at the owners
    and then finds none."""
    _lock_owners(project)
    memberships = list(
        Membership.objects.select_for_update(of=("self",))
        .filter(project=project)
        .select_related("user")
        .order_by("pk")
    )
    owner_hold(project=project, user=by)
    if if_alone and any(m.user_id != by.pk for m in memberships):
        raise MembershipError(f"Someone else joined “{project.name}” meanwhile.")
    now = timezone.now()
    Project.objects.filter(pk=project.pk).update(deleted_at=now)
    project.deleted_at = now
    Invitation.objects.pending().filter(project=project).update(revoked_at=now)
    audit_record(
        action="project.deleted",
        actor=by,
        project=project,
        target=project,
        ip=ip,
        metadata={"name": project.name, "members": [m.user.email for m in memberships]},
    )
    project_deleted.send(sender=Project, project=project, by=by, ip=ip)
    Membership.objects.filter(project=project).delete()
    changed(project.change_identity, *(m.user.change_identity for m in memberships))
    if not if_alone:  # with the account deleted, its own mail says so
        name, addresses = project.name, [m.user.email for m in memberships]
        tell = partial(_tell_members_deleted, name, addresses, by=by.email, when=now)
        transaction.on_commit(lambda: after_answer(tell, what="project deletion notices"))


def _tell_members_deleted(name: str, addresses: list[str], *, by: str, when: datetime) -> None:
    """Each former member, in a message of their own: the project is gone, and who did it.

    After the answer (core.after_answer), over one connection to the mail server: sent on
    the owner's request, a connection each, a project of 500 members held a web worker
    (which the API shares) for 500 mails, 10 s each with the mail server down, and past
    the worker's timeout the members after that point were never told. A server down now
    fails once, at the connection (logged by the thread); one refused message is logged
    and the others still go."""
    messages = [
        EmailMessage(
            subject=one_line(f"[Reminix] The project {name} was deleted"),
            body=(
                f"{by} deleted the project {one_line(name)} on {when:%-d %b %Y, %H:%M} UTC. "
                "Its API keys and client tokens were revoked at once: calls with them "
                "now get 401. You are no longer a member of it, and your personal "
                "access tokens no longer reach it.\n\n"
                "If this was not expected, ask the person who deleted it. A deleted "
                "project cannot be restored; its keys cannot be brought back.\n\n"
                f"{settings.DASHBOARD_URL}\n"
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[address],
        )
        for address in addresses
    ]
    with get_connection() as connection:
        for message in messages:
            try:
                connection.send_messages([message])
            except Exception as failure:  # noqa: BLE001 - the deletion stands; logged
                logger.warning("Deletion notice not sent (%s)", type(failure).__name__)


class AccountDeletionRefused(Exception):
    """Deleting the account would leave projects that others use without an owner."""

    def __init__(self, projects: list[Project]) -> None:
        self.projects = projects
        names = ", ".join(f"“{p.name}”" for p in projects)
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
