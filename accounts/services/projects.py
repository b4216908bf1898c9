"""A project's creation and rename, and the most projects one person may be in."""

from __future__ import annotations

import secrets

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from accounts.events import project_created
from accounts.models import Membership, Project, User
from accounts.services.membership_locks import owner_hold
from audit.log import audit_record
from core.invalidation import changed

# The words a URL puts where a project's slug goes (projects/new/ creates a project):
# a project with one of them as its slug had its overview answered by that page instead.
RESERVED_SLUGS = frozenset({"new"})


def _unique_slug(name: str) -> str:
    base = slugify(name)[:48].strip("-") or "project"
    slug = base
    while slug in RESERVED_SLUGS or Project.objects.filter(slug=slug).exists():
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
