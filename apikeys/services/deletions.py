"""What a deleted project or account does to its tokens: the receivers of accounts'
project_deleted and account_deleted signals (connected in apikeys/apps.py)."""

from __future__ import annotations

from typing import Any

from accounts.models import Project, User
from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.services.common import token_revoke
from audit.log import audit_record


def credentials_revoke_of_deleted_project(
    sender: type, *, project: Project, by: User, ip: str | None, **kwargs: Any
) -> None:
    """On accounts' project_deleted (project_delete): every API key of the project that
    still works is revoked, each on the audit trail as any revocation is. Their client
    tokens die with them, and those members' PATs minted with their memberships
    (ClientToken.end_reason_at): no statement here grows with how many were minted, which
    whoever held a leaked key could otherwise have made too many to end in time, and so
    made the project impossible to delete. The deletion announces the project's change to
    the API's workers, which covers every copy of these callers."""
    keys = list(ApiKey.objects.for_project(project).filter(revoked_at__isnull=True).order_by("pk"))
    ApiKey.objects.filter(pk__in=[key.pk for key in keys]).revoke(by=by)
    for key in keys:
        audit_record(
            action="api_key.revoked",
            actor=by,
            project=project,
            target=key,
            ip=ip,
            metadata={"reason": "project deleted"},
        )
    # A PAT picked for some projects no longer lists this one ("no project" if it was its
    # only one: it reaches nothing, rather than every project of its person).
    PersonalAccessToken.projects.through.objects.filter(project=project).delete()


def personal_tokens_revoke_of_deleted_account(
    sender: type, *, user: User, ip: str | None, **kwargs: Any
) -> None:
    """On accounts' account_deleted (account_delete): every PAT of the person is revoked,
    each on the audit trail as any revocation is."""
    for pat in PersonalAccessToken.objects.filter(user=user, revoked_at__isnull=True):
        token_revoke(
            pat,
            action="personal_token.revoked",
            by=user,
            project=None,
            ip=ip,
            metadata={"reason": "account deleted"},
        )
