"""Deleting a project for everyone, and telling its members."""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.utils import timezone

from accounts.events import project_deleted
from accounts.models import Invitation, Membership, Project, User
from accounts.services.membership_locks import MembershipError, _lock_owners, owner_hold
from audit.log import audit_record
from core.after_answer import after_answer
from core.invalidation import changed
from core.mail import one_line
from core.text_direction import quoted

logger = logging.getLogger(__name__)


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
        raise MembershipError(f"Someone else joined {quoted(project.name)} meanwhile.")
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
