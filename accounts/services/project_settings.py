"""An owner's settings of a project: the browser origins of its Client API, the
longest its keys and personal access tokens may live and what happens to a leaked key,
and whether every member needs a second factor."""

from __future__ import annotations

from django.db import transaction

from accounts.models import AllowedOrigin, Project, User
from accounts.services.membership_locks import owner_hold
from accounts.two_factor import has_two_factor
from audit.log import audit_record
from core.invalidation import changed

MAX_POLICY_DAYS = 366


@transaction.atomic
def project_set_allowed_origins(
    *, project: Project, origins: list[str], by: User, ip: str | None = None
) -> bool:
    """Which browser origins may call the Client API with this project's client tokens.
    False (nothing recorded) if they are the ones it allows already, in any order."""
    owner_hold(project=project, user=by)
    old = project.allowed_origins
    if set(old) == set(origins):
        return False
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
    return True


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
