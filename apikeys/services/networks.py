"""Where an API key or a PAT may be used from: its allowed networks (token_networks_set)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import User
from accounts.security_notices import security_notice_send
from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.services.common import _by_a_member
from apikeys.services.personal_tokens import _unrevoked
from audit.log import audit_record
from core.invalidation import changed
from core.networks import parse_networks


@transaction.atomic
def token_networks_set(
    token: ApiKey | PersonalAccessToken,
    *,
    networks: list[str],
    by: User | None,
    ip: str | None = None,
) -> bool:
    """Limit a key or PAT to `networks` (canonical CIDRs; empty: anywhere), from the next
    call on every worker. False (nothing recorded) if the list is what it was. Revoked if
    the PAT was revoked (a revoked key's list may still be kept tidy)."""
    canonical, problems = parse_networks("\n".join(networks))
    if problems:
        raise ValidationError(problems)
    if isinstance(token, ApiKey):
        _by_a_member(token.project, by)
    else:
        _unrevoked(token)
    # The list as it is now, the token's row held until this commits (FOR NO KEY UPDATE, as
    # _unrevoked's: usage rows naming it are not held up), not as the caller read it: a
    # list saved meanwhile would be compared with a copy from before it ("as they were",
    # nothing written, the other's list left on the key) and named wrongly as "from".
    before = list(
        type(token)
        ._default_manager.select_for_update(no_key=True)
        .filter(pk=token.pk)
        .values_list("allowed_networks", flat=True)
        .get()
    )
    if canonical == before:
        return False
    token.allowed_networks = canonical
    token.save(update_fields=["allowed_networks"])
    changed(token.change_identity)
    audit_record(
        action=f"{'api_key' if isinstance(token, ApiKey) else 'personal_token'}.networks_changed",
        actor=by,
        project=token.project if isinstance(token, ApiKey) else None,
        target=token,
        ip=ip,
        metadata={"from": before, "to": canonical},
    )
    if isinstance(token, PersonalAccessToken):
        where = ", ".join(canonical) if canonical else "any network"
        security_notice_send(
            user=token.user,
            action="personal_token.networks_changed",
            ip=ip,
            detail=f"“{token.name}” ({token.hint}) may now be used from {where}",
        )
    return True
