"""Writes of API keys (`reminix_sk_`): created (api_key_create), renamed, revoked,
suspended and resumed, rolled, and handed over from people who left the project; the
project's one working key of each name (key_name_claim)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Membership, Project, User
from accounts.services import NoLongerAMember, member_hold, owner_hold
from apikeys.models import NAME_CONSTRAINT, ApiKey, ClientToken
from apikeys.services.common import (
    CannotRoll,
    RolledMeanwhile,
    _by_a_member,
    _lifetime,
    token_revoke,
)
from apikeys.services.limits import (
    OutOfPolicy,
    TooManyTokens,
    agent_scope_checked,
    expiry_within_limit,
    key_name_normal,
    permissions_or_all,
    token_name_checked,
    too_many_keys_message,
    working_keys_full,
)
from apikeys.tokens import Secret, TokenKind, token_generate, token_hash, token_hint
from audit.log import audit_record
from core.db_errors import violates
from core.invalidation import changed
from core.shared_limits import one_count_for
from core.validators import no_secret, no_secret_in_reason, single_line

SUSPENSION_REASON_MAX = 200  # ApiKey.suspended_reason's max_length


class KeyNameTaken(Exception):
    """Another working key of the project has this name, whatever its case. Callers check
    first (key_name_taken) to say so beside the field; this is for the request that passed
    that check at the same moment as another that took the name (a form sent from two
    tabs, two API calls): the database's constraint refused it, and nothing it wrote is
    kept. Not a ValueError, which the API reads as a bad agent scope."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def key_name_taken(project: Project, name: str, renaming: ApiKey | None = None) -> bool:
    """Whether another working (not revoked, not expired) key of `project` has `name`,
    whatever its case."""
    same = ApiKey.objects.for_project(project).named(key_name_normal(name)).active()
    if renaming is not None:
        same = same.exclude(pk=renaming.pk)
    return same.exists()


@contextmanager
def key_name_claim(
    project: Project, name: str, *, renaming: ApiKey | None = None
) -> Iterator[None]:
    """A transaction in which a key of `project` gets `name`: KeyNameTaken, with all it
    wrote rolled back (the key, its audit event), if a working key has the name by the
    time it is written; any other IntegrityError goes through as it is.

    First it frees the name from the project's expired keys that still hold it in the
    constraint (see ApiKey.name_released): the rule lets a new key take an expired key's
    name, and only a write can tell the database that the key has ended. Two claims of one
    name at once wait on those rows, then on the index: one of them gets KeyNameTaken."""
    try:
        with transaction.atomic():
            expired = (
                ApiKey.objects.for_project(project)
                .named(name)
                .filter(revoked_at__isnull=True, name_released=False)
                .filter(expires_at__lte=timezone.now())
            )
            if renaming is not None:
                expired = expired.exclude(pk=renaming.pk)
                # The renamed key and the expired ones it frees the name from, held in id
                # order before either is written, as a hand-over of leavers' keys takes
                # them (api_keys_transfer_from_leavers): in any other order the two could
                # each hold one key and wait for the other's.
                list(
                    ApiKey.objects.filter(Q(pk=renaming.pk) | Q(pk__in=expired.values("pk")))
                    .select_for_update(no_key=True)
                    .order_by("pk")
                    .values_list("pk", flat=True)
                )
            expired.update(name_released=True)
            yield
    except IntegrityError as refused:
        if not violates(refused, NAME_CONSTRAINT):
            raise
        raise KeyNameTaken(name) from None


@transaction.atomic
def api_key_create(
    *,
    project: Project,
    name: str,
    created_by: User | None,
    permissions: list[str] | None = None,
    expires_at: datetime | None = None,
    ip: str | None = None,
    agent_names: list[str] | None = None,
    agent_actions: list[str] | None = None,
    notes: str = "",
) -> tuple[ApiKey, Secret]:
    """A new key and its secret. The secret is returned once and is not kept anywhere.
    `agent_names`, `agent_actions`: its agent scope (apikeys/scopes.py); none: all.
    OutOfPolicy if it would live longer than the project's lifetime policy allows, or
    than LONGEST_LIFETIME; KeyNameTaken if a working key of the project has the name (see
    key_name_claim); ValidationError if the name is not one (token_name_checked), or the
    notes hold a token; NoLongerAMember if `created_by` is not a member of the project,
    or the project was deleted; TooManyTokens if the project has
    MAX_WORKING_KEYS_PER_PROJECT working keys."""
    _by_a_member(project, created_by)
    # Two keys made at once at one below the cap take turns on the project's row (FOR NO
    # KEY UPDATE, as owners' changes: inserts naming the project do not wait), so the
    # second counts the first. A deletion holds that row until it commits: one made by no
    # person (createapikey: no membership to hold) that waited for it finds it deleted,
    # rather than make a key after the deletion revoked the others.
    live = Project.objects.select_for_update(no_key=True).filter(deleted_at__isnull=True)
    if live.filter(pk=project.pk).first() is None:
        raise NoLongerAMember
    if working_keys_full(project):
        raise TooManyTokens(too_many_keys_message())
    names, actions = agent_scope_checked(agent_names, agent_actions)
    expiry_within_limit(expires_at, now=timezone.now())
    days = project.max_key_lifetime_days
    if Project.lifetime_exceeds(days, timezone.now(), expires_at):
        raise OutOfPolicy(
            f"Project “{project.name}” accepts only keys that expire within {days} days."
        )
    name = token_name_checked(name)
    no_secret(notes)
    with key_name_claim(project, name):
        api_key, secret = ApiKey.objects.mint(
            project=project,
            name=name,
            notes=notes.strip(),
            permissions=permissions_or_all(permissions),
            created_by=created_by,
            expires_at=expires_at,
            agent_names=names,
            agent_actions=actions,
        )
        audit_record(
            action="api_key.created",
            actor=created_by,
            # No person: made by `manage.py createapikey`. Named as the key list names it.
            actor_email="" if created_by else "a script (manage.py createapikey)",
            project=project,
            target=api_key,
            ip=ip,
            metadata=_lifetime(api_key),
        )
    return api_key, secret


class KeyEnded(Exception):
    """The API key is revoked or expired: it never works again, and stays for the record
    as it was (Stripe refuses an update of a deleted object). The message says which, and
    when."""


def _unended(api_key: ApiKey) -> None:
    """Within key_name_claim, whose lock on the renamed key's row is held by now (so a
    revocation asked for meanwhile waits for the rename): the key as it is, not as the
    caller read it. KeyEnded if it is revoked or expired."""
    api_key.revoked_at, api_key.expires_at = (
        ApiKey.objects.filter(pk=api_key.pk).values_list("revoked_at", "expires_at").get()
    )
    if ended := api_key.end_reason_at(timezone.now()):
        raise KeyEnded(ended)


@transaction.atomic
def api_key_rename(
    *, api_key: ApiKey, name: str, by: User, ip: str | None = None, notes: str | None = None
) -> ApiKey:
    """A new name and (when given) new notes for a key. KeyNameTaken if another working
    key of the project has the name (see key_name_claim); the key is then left as it was,
    in the database and in `api_key`. KeyEnded if the key is revoked or expired (by now),
    as a roll of it is refused. ValidationError if the name is not one
    (token_name_checked), or the notes hold a token."""
    _by_a_member(api_key.project, by)
    old, old_notes = api_key.name, api_key.notes
    name = token_name_checked(name)
    no_secret(notes or "")
    try:
        with key_name_claim(api_key.project, name, renaming=api_key):
            _unended(api_key)
            api_key.name = name
            if notes is not None:
                api_key.notes = notes.strip()
            api_key.save(update_fields=["name", "notes"])
            metadata: dict[str, str] = {"from": old, "to": api_key.name}
            if api_key.notes != old_notes:
                metadata["notes"] = api_key.notes
            audit_record(
                action="api_key.renamed",
                actor=by,
                project=api_key.project,
                target=api_key,
                ip=ip,
                metadata=metadata,
            )
    except KeyNameTaken:
        api_key.name, api_key.notes = old, old_notes
        raise
    return api_key


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, by: User | None, ip: str | None = None) -> bool:
    """Revoke a key. Committed before this returns, so the next call with it gets 401.
    Its client tokens die with it (ClientToken.end_reason_at: nothing is written to them);
    the audit event says how many still worked, one COUNT on the key's index."""
    _by_a_member(api_key.project, by)
    ended = ClientToken.objects.working_of_key(api_key, timezone.now()).count()
    return token_revoke(
        api_key,
        action="api_key.revoked",
        by=by,
        project=api_key.project,
        ip=ip,
        metadata={"client_tokens_ended": ended},
    )


@transaction.atomic
def api_key_suspend(
    *, api_key: ApiKey, by: User | None, reason: str, ip: str | None = None
) -> bool:
    """Suspend a key: refused from the next call on (401 suspended_api_key, with `reason`),
    on every worker, until resumed; the client tokens it minted are refused meanwhile. False
    if it was suspended or revoked already (nothing is recorded then)."""
    _by_a_member(api_key.project, by)
    reason = reason.strip()
    # The same rules as the form's, for every caller: it ends up in 401 messages and mail.
    if len(reason) > SUSPENSION_REASON_MAX:  # first: the token check reads a long text slowly
        raise ValidationError(
            f"A reason is at most {SUSPENSION_REASON_MAX} characters.", code="max_length"
        )
    single_line(reason)
    no_secret_in_reason(reason)
    suspended = api_key.suspend(by=by, reason=reason)
    if suspended:
        _key_changed(api_key, action="api_key.suspended", by=by, ip=ip, metadata={"reason": reason})
    return suspended


@transaction.atomic
def api_key_resume(*, api_key: ApiKey, by: User | None, ip: str | None = None) -> bool:
    """Lift a suspension: the key (and the client tokens it minted) work again from the
    next call. False if it was not suspended, or is revoked."""
    _by_a_member(api_key.project, by)
    resumed = api_key.resume()
    if resumed:
        _key_changed(api_key, action="api_key.resumed", by=by, ip=ip)
    return resumed


# How long the secret a key was rolled from keeps working: the choices the page offers.
ROLL_OVERLAPS: dict[str, timedelta] = {
    "now": timedelta(0),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}


@transaction.atomic
def api_key_roll(
    *,
    api_key: ApiKey,
    by: User | None,
    overlap: timedelta,
    ip: str | None = None,
    replacing: str | None = None,
) -> Secret:
    """Give the key a new secret, returned once. The secret it had keeps working for
    `overlap` (0: stops now), then is refused naming the new one; the client tokens it
    minted end with it. A secret still in its overlap from an earlier roll ends now. The
    key keeps its name, permissions, expiry, suspension and usage history.
    `replacing`: the hint of the secret the form was shown for; RolledMeanwhile if the key
    has another by now (two sends of one form would otherwise roll twice, the second
    ending at once the secret the first left running for its overlap)."""
    if overlap < timedelta(0) or overlap > max(ROLL_OVERLAPS.values()):
        raise ValueError("The overlap is from none to 7 days.")
    _by_a_member(api_key.project, by)
    # FOR UPDATE: the new token_hash is under a unique index, so PostgreSQL takes FOR
    # UPDATE for the UPDATE below whatever is asked here (usage inserts naming the key wait
    # for the few milliseconds of the roll).
    api_key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    now = timezone.now()
    if api_key.revoked_at is not None or (api_key.expires_at and api_key.expires_at <= now):
        raise CannotRoll(api_key.end_reason_at(now) or "This API key no longer works.")
    if replacing is not None and replacing != api_key.hint:
        raise RolledMeanwhile(api_key.hint)
    ended_early = api_key.previous_hint if api_key.previous_secret_works_at(now) else ""
    secret = token_generate(TokenKind.API_KEY)
    old_hint = api_key.hint
    old_ends = now + overlap
    old_hash = api_key.token_hash
    api_key.previous_token_hash, api_key.previous_hint = old_hash, old_hint
    api_key.previous_expires_at = old_ends
    api_key.token_hash = token_hash(secret)
    api_key.hint = token_hint(secret, TokenKind.API_KEY)
    api_key.rolled_at, api_key.rolled_by = now, by
    # Through the overlap both secrets count against the key's one rate limit.
    one_count_for((old_hash, api_key.token_hash), api_key.change_identity, until=old_ends)
    api_key.save(
        update_fields=[
            "token_hash",
            "hint",
            "previous_token_hash",
            "previous_hint",
            "previous_expires_at",
            "rolled_at",
            "rolled_by",
        ]
    )
    # The client tokens minted with the old secret end when it does, those of the secret an
    # earlier roll left running now: the API checks the minting secret on every call
    # (ClientToken.end_reason_at). Nothing is written per token.
    metadata: dict[str, Any] = {
        "previous": old_hint,
        "new": api_key.hint,
        "overlap_seconds": int(overlap.total_seconds()),
        "previous_expires_at": old_ends.isoformat(),
    }
    if ended_early:
        metadata["ended_now"] = ended_early
    _key_changed(api_key, action="api_key.rolled", by=by, ip=ip, metadata=metadata)
    return secret


@transaction.atomic
def api_key_end_previous_secret(
    *, api_key: ApiKey, by: User | None, ip: str | None = None, via: str = ""
) -> bool:
    """End the overlap of a rolled key now: its previous secret, and the client tokens
    minted with it, are refused from the next call. False if no previous secret works."""
    _by_a_member(api_key.project, by)
    # FOR NO KEY UPDATE: it serialises changes to the key as FOR UPDATE does, without
    # holding up the inserts of usage rows that name it (their foreign-key checks).
    api_key = ApiKey.objects.select_for_update(no_key=True).get(pk=api_key.pk)
    now = timezone.now()
    if not api_key.previous_secret_works_at(now):
        return False
    api_key.previous_expires_at = now
    api_key.save(update_fields=["previous_expires_at"])
    # The client tokens minted with it end with it (ClientToken.end_reason_at).
    _key_changed(
        api_key,
        action="api_key.previous_secret_ended",
        by=by,
        ip=ip,
        metadata={"previous": api_key.previous_hint, **({"via": via} if via else {})},
    )
    return True


@transaction.atomic
def api_keys_transfer_from_leavers(
    *, project: Project, to: User, by: User, ip: str | None = None
) -> int:
    """Make `to` (a member) the creator of record of every key of `project` whose creator
    is no longer a member, so each has someone answerable for it. The keys themselves do
    not change. Returns how many; one audit event per key. Owners only (NotAnOwner)."""
    owner_hold(project=project, user=by)
    try:
        member_hold(project=project, user=to)  # not handed to someone leaving meanwhile
    except NoLongerAMember:
        raise ValueError("Keys can be handed only to a member of the project.") from None
    members = Membership.objects.filter(project=project).values("user_id")
    # Held in id order, all before any is written, as a rename takes the keys it writes
    # (key_name_claim): a rename of one of them to the name another still holds would
    # otherwise deadlock with this.
    orphaned = list(
        ApiKey.objects.for_project(project)
        .filter(created_by__isnull=False)
        .exclude(created_by__in=members)
        .select_related("created_by")
        .select_for_update(of=("self",), no_key=True)
        .order_by("pk")
    )
    for key in orphaned:
        before = key.created_by.email if key.created_by else None
        key.created_by = to
        key.save(update_fields=["created_by"])
        audit_record(
            action="api_key.transferred",
            actor=by,
            project=project,
            target=key,
            ip=ip,
            metadata={"from": before, "to": to.email},
        )
    return len(orphaned)


def _key_changed(
    api_key: ApiKey,
    *,
    action: str,
    by: User | None,
    ip: str | None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """What follows every change to a key the API's workers may hold a copy of: the
    announcement (sent once the transaction commits) and the audit event, in it."""
    changed(api_key.change_identity)
    audit_record(
        action=action, actor=by, project=api_key.project, target=api_key, ip=ip, metadata=metadata
    )
