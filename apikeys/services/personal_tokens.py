"""Writes of personal access tokens (`reminix_pat_`): created (personal_token_create),
renamed, revoked and regenerated."""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from accounts.models import Project, User
from accounts.security_notices import security_notice_send
from apikeys.models import PAT_ONLY_PERMISSIONS, PersonalAccessToken, TokenStatus
from apikeys.services.common import CannotRoll, RolledMeanwhile, _lifetime, token_revoke
from apikeys.services.limits import (
    OutOfPolicy,
    TooManyTokens,
    agent_scope_checked,
    expiry_within_limit,
    permissions_or_all,
    token_name_checked,
    too_many_pats_message,
    working_pats_full,
)
from apikeys.tokens import Secret, TokenKind, token_generate, token_hash, token_hint
from audit.log import audit_record
from core.invalidation import changed


class Revoked(Exception):
    """The personal access token was revoked: it stays for the record, unchanged."""


@transaction.atomic
def personal_token_create(
    *,
    user: User,
    name: str,
    permissions: list[str] | None = None,
    projects: list[Project] | None = None,
    expires_at: datetime | None = None,
    ip: str | None = None,
    agent_names: list[str] | None = None,
    agent_actions: list[str] | None = None,
) -> tuple[PersonalAccessToken, Secret]:
    """A new PAT for `user`, optionally limited to some of their projects and to some
    agents (by name, in any of them). Returned once. OutOfPolicy if it would live longer
    than LONGEST_LIFETIME, or than a project it reaches allows; ValidationError if the
    name is not one (token_name_checked); TooManyTokens if `user` has
    MAX_WORKING_PATS_PER_PERSON working PATs."""
    name = token_name_checked(name)
    names, actions = agent_scope_checked(agent_names, agent_actions)
    expiry_within_limit(expires_at, now=timezone.now())
    # Two tokens made at once at one below the cap take turns on the person's row, as a
    # deletion of the account does (accounts.services.account_delete): one that committed
    # while this waited leaves no active person, and no token is made for them.
    if not User.objects.select_for_update(no_key=True).filter(pk=user.pk, is_active=True).first():
        raise PermissionDenied("This account has been deleted.")
    if working_pats_full(user):
        raise TooManyTokens(too_many_pats_message())
    reach = projects if projects else Project.objects.for_user(user)
    for project in reach:
        days = project.max_pat_lifetime_days
        if Project.lifetime_exceeds(days, timezone.now(), expires_at):
            raise OutOfPolicy(
                f"Project “{project.name}” accepts only personal access tokens that expire "
                f"within {days} days."
            )
    pat, secret = PersonalAccessToken.objects.mint(
        user=user,
        name=name,
        permissions=permissions_or_all(permissions, extra=PAT_ONLY_PERMISSIONS),
        expires_at=expires_at,
        projects_restricted=bool(projects),
        agent_names=names,
        agent_actions=actions,
    )
    if projects:
        pat.projects.set(projects)
    audit_record(
        action="personal_token.created",
        actor=user,
        target=pat,
        ip=ip,
        metadata={**_lifetime(pat), "projects": [p.slug for p in projects or []]},
    )
    security_notice_send(
        user=user, action="personal_token.created", ip=ip, detail=f"“{pat.name}” ({pat.hint})"
    )
    return pat, secret


def _unrevoked(personal_token: PersonalAccessToken) -> None:
    """Before a change to a PAT's name or networks: it is not revoked, and a revocation
    asked for meanwhile waits for the change to commit (its row, FOR NO KEY UPDATE as
    api_key_end_previous_secret's: usage rows naming it are not held up). Revoked if it
    was revoked."""
    revoked_at = (
        PersonalAccessToken.objects.select_for_update(no_key=True)
        .filter(pk=personal_token.pk)
        .values_list("revoked_at", flat=True)
        .first()
    )
    if revoked_at is not None:
        personal_token.revoked_at = revoked_at
        raise Revoked(personal_token.end_reason_at(timezone.now()))


@transaction.atomic
def personal_token_rename(
    *, personal_token: PersonalAccessToken, name: str, by: User, ip: str | None = None
) -> PersonalAccessToken:
    """A new name for a PAT; Revoked if it was revoked (by now); ValidationError if the
    name is not one (token_name_checked). A name kept before names were checked here
    stays as it is until renamed."""
    name = token_name_checked(name)
    _unrevoked(personal_token)
    old = personal_token.name
    personal_token.name = name
    personal_token.save(update_fields=["name"])
    audit_record(
        action="personal_token.renamed",
        actor=by,
        target=personal_token,
        ip=ip,
        metadata={"from": old, "to": personal_token.name},
    )
    return personal_token


@transaction.atomic
def personal_token_revoke(
    *, personal_token: PersonalAccessToken, by: User, ip: str | None = None
) -> bool:
    return token_revoke(personal_token, action="personal_token.revoked", by=by, project=None, ip=ip)


@transaction.atomic
def personal_token_regenerate(
    *,
    personal_token: PersonalAccessToken,
    by: User,
    expires_at: datetime | None,
    ip: str | None = None,
    replacing: str | None = None,
) -> Secret:
    """Give the PAT a new secret, returned once, and a new expiry, as GitHub's "Regenerate
    token": the old secret is refused from the next call, with the client tokens it
    minted. Name, permissions, projects, networks and usage history stay. An expired PAT
    can be regenerated; a revoked one cannot (CannotRoll). `replacing`: as api_key_roll's
    (RolledMeanwhile: a second send of the form would end the secret the first showed).
    TooManyTokens if it had expired and its person has MAX_WORKING_PATS_PER_PERSON working
    PATs: it would work again, one more, as a new one would."""
    # The person's row first, as personal_token_create takes it (and an account's deletion,
    # before it revokes their tokens): a token made meanwhile at one below the cap and an
    # expired one regenerated take turns, so the second counts the first.
    User.objects.select_for_update(no_key=True).filter(pk=personal_token.user_id).first()
    # FOR UPDATE, as api_key_roll's: its new token_hash is under a unique index.
    pat = PersonalAccessToken.objects.select_for_update().get(pk=personal_token.pk)
    now = timezone.now()
    if pat.revoked_at is not None:
        raise CannotRoll(pat.end_reason_at(now) or "This personal access token was revoked.")
    if replacing is not None and replacing != pat.hint:
        raise RolledMeanwhile(pat.hint)
    expiry_within_limit(expires_at, now=now)
    works_again = pat.status_at(now) is not TokenStatus.ACTIVE and (
        expires_at is None or expires_at > now
    )
    if works_again and working_pats_full(pat.user):
        raise TooManyTokens(too_many_pats_message())
    for project in pat.reachable_projects():
        days = project.max_pat_lifetime_days
        if Project.lifetime_exceeds(days, now, expires_at):
            raise OutOfPolicy(
                f"Project “{project.name}” accepts only personal access tokens that expire "
                f"within {days} days."
            )
    secret = token_generate(TokenKind.PERSONAL_ACCESS_TOKEN)
    old_hint = pat.hint
    pat.token_hash = token_hash(secret)
    pat.hint = token_hint(secret, TokenKind.PERSONAL_ACCESS_TOKEN)
    pat.expires_at, pat.regenerated_at = expires_at, now
    pat.expiry_reminder_sent_at = None  # the new lifetime gets its own reminder
    pat.save(
        update_fields=[
            "token_hash",
            "hint",
            "expires_at",
            "regenerated_at",
            "expiry_reminder_sent_at",
        ]
    )
    # The client tokens it minted end with its old secret (ClientToken.end_reason_at).
    changed(pat.change_identity)
    audit_record(
        action="personal_token.regenerated",
        actor=by,
        target=pat,
        ip=ip,
        metadata={
            "previous": old_hint,
            "new": pat.hint,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    security_notice_send(
        user=pat.user,
        action="personal_token.regenerated",
        ip=ip,
        detail=f"“{pat.name}” (now {pat.hint})",
    )
    personal_token.token_hash, personal_token.hint = pat.token_hash, pat.hint
    personal_token.expires_at, personal_token.regenerated_at = pat.expires_at, pat.regenerated_at
    return secret
