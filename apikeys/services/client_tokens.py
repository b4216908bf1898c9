"""Writes of client tokens (`reminix_ct_`): minted by an API key or a PAT
(client_token_create), revoked one at a time or all of a key's at once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import member_hold
from apikeys.models import CLIENT_TOKEN_MAX_TTL, ApiKey, ClientToken, PersonalAccessToken
from apikeys.scopes import widening
from apikeys.services.api_keys import _key_changed
from apikeys.services.common import _by_a_member, _scope, token_revoke
from apikeys.services.limits import agent_scope_checked
from apikeys.tokens import Secret
from audit.log import audit_record

CLIENT_TOKEN_DEFAULT_TTL = 3600


@transaction.atomic
def client_token_create(
    *,
    project: Project,
    context: dict[str, Any],
    server_context: dict[str, Any] | None = None,
    ttl_seconds: int = CLIENT_TOKEN_DEFAULT_TTL,
    api_key: ApiKey | None = None,
    personal_token: PersonalAccessToken | None = None,
    ip: str | None = None,
    with_previous_secret: bool = False,
    agent_names: list[str] | None = None,
    agent_actions: list[str] | None = None,
) -> tuple[ClientToken, Secret]:
    """A client token minted by `api_key` (or by a PAT for `project`). Returned once. It
    expires after `ttl_seconds`, or with the key or PAT that mints it if that is sooner.
    `with_previous_secret`: minted with the secret the key was rolled from, so it ends
    when that secret does."""
    if (api_key is None) == (personal_token is None):
        raise ValueError("A client token is minted by exactly one API key or PAT.")
    if not 1 <= ttl_seconds <= CLIENT_TOKEN_MAX_TTL:
        # The client tokens page counts on it (ClientTokenQuerySet.alive_since).
        raise ValueError(f"A client token lives 1 to {CLIENT_TOKEN_MAX_TTL} seconds.")
    minted_in = None
    if personal_token is not None:
        # Minted for a person (its PAT's): they are a member until it commits, and it dies
        # with this membership of theirs.
        minted_in = member_hold(project=project, user=personal_token.user)
    names, actions = agent_scope_checked(agent_names, agent_actions)
    parent = api_key or personal_token
    assert parent is not None
    if beyond := widening(parent, names, actions):
        raise ValueError(f"The {parent.noun} that mints it does not have {beyond}.")
    expires_at = timezone.now() + timedelta(seconds=ttl_seconds)
    # It dies with its parent: its expiry says so, to the minter's backend and to the
    # browser (GET /client/token), rather than an hour the key will not see.
    if parent.expires_at is not None:
        expires_at = min(expires_at, parent.expires_at)
    # The secret that mints it (its hint): the client token ends with it (a rolled key's,
    # a regenerated PAT's), checked on every call (api/authentication.py).
    minted_with = parent.hint
    if api_key is not None and with_previous_secret:
        minted_with = api_key.previous_hint
        if api_key.previous_expires_at is not None:
            expires_at = min(expires_at, api_key.previous_expires_at)
    client_token, secret = ClientToken.objects.mint(
        project=project,
        api_key=api_key,
        personal_token=personal_token,
        context=context,
        server_context=server_context or {},
        expires_at=expires_at,
        minted_with_hint=minted_with,
        minted_in=minted_in,
        agent_names=names,
        agent_actions=actions,
    )
    minted_by = api_key or personal_token
    audit_record(
        action="client_token.created",
        actor=personal_token.user if personal_token else None,
        project=project,
        target=client_token,
        ip=ip,
        metadata={"minted_by": str(minted_by), "ttl_seconds": ttl_seconds, **_scope(client_token)},
    )
    return client_token, secret


@transaction.atomic
def client_token_revoke(
    *, client_token: ClientToken, by: User | None = None, ip: str | None = None, via: str = ""
) -> bool:
    """Revoke one client token at once; its record stays for audit. False if it was
    revoked already, itself or with all its key's (ClientToken.revoke)."""
    _by_a_member(client_token.project, by)
    return token_revoke(
        client_token,
        action="client_token.revoked",
        by=by,
        project=client_token.project,
        ip=ip,
        metadata={"via": via} if via else {},
    )


@transaction.atomic
def client_tokens_revoke_for_key(*, api_key: ApiKey, by: User, ip: str | None = None) -> bool:
    """Revoke every client token `api_key` has minted until now; those it mints after work.
    False if it never minted one.

    One write, to the key: the highest client token id now (ApiKey.client_tokens_revoked_
    through), and the API refuses a token of the key with an id up to it (read with the
    token, api/lookup.py; ClientToken.end_reason_at). An UPDATE of every live token ran
    past the statement timeout once there were a few hundred thousand, and whoever held a
    leaked key could mint that many in a few hours: no statement here grows with them.
    """
    project = api_key.project
    _by_a_member(project, by)
    # FOR NO KEY UPDATE: two revoke-alls (and the key's other changes) take turns; a mint
    # (its foreign key's FOR KEY SHARE) neither waits for this nor holds it up. A mint
    # that holds the key's row through its transaction let a leaked key's holder, minting
    # without pause, keep an owner's revoke-all, roll or revocation waiting: a row's
    # share locks are granted past a waiting exclusive one.
    api_key = ApiKey.objects.select_for_update(no_key=True).get(pk=api_key.pk)
    api_key.project = project  # as read above: no second read of it for the audit event
    if not ClientToken.objects.filter(api_key=api_key).exists():
        return False
    # The table's highest id (the primary key's index, one entry), read anew by this
    # statement: at least the id of every token committed before it, which is every token
    # the key has minted until now. A mint under way meanwhile is a token minted at the
    # same moment: refused if another drew a higher id and committed first, else working,
    # as one minted just after; every mint from here draws a higher id from the sequence.
    newest = ClientToken.objects.aggregate(newest=Max("pk"))["newest"]
    assert newest is not None
    api_key.client_tokens_revoked_through = max(newest, api_key.client_tokens_revoked_through or 0)
    api_key.client_tokens_revoked_at = timezone.now()
    api_key.save(update_fields=["client_tokens_revoked_through", "client_tokens_revoked_at"])
    # Every copy of a client token the key minted depends on the key too.
    _key_changed(api_key, action="client_token.revoked_all_of_key", by=by, ip=ip)
    return True
