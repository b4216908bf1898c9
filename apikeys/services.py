"""Writes for tokens of all three kinds. Each is one transaction with its audit event.

Where a key is created: api_key_create() below. Checked: api/authentication.py. Logged:
usage/writer.py.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from accounts.models import Membership, Project, User
from accounts.security_notices import security_notice_send
from accounts.services import NoLongerAMember, member_hold, owner_hold
from apikeys.models import (
    ALL_PERMISSIONS,
    CLIENT_TOKEN_MAX_TTL,
    NAME_CONSTRAINT,
    PAT_ONLY_PERMISSIONS,
    ApiKey,
    ClientToken,
    PersonalAccessToken,
    Token,
)
from apikeys.scopes import AGENT_ACTIONS, parse_agent_names, widening
from apikeys.tokens import Secret, TokenKind, token_generate, token_hash, token_hint
from audit.log import audit_record
from core.db_errors import violates
from core.invalidation import changed
from core.networks import parse_networks
from core.validators import no_secret, no_secret_in_reason, single_line, visible

CLIENT_TOKEN_DEFAULT_TTL = 3600
SUSPENSION_REASON_MAX = 200  # ApiKey.suspended_reason's max_length


class OutOfPolicy(ValueError):
    """The token would live longer than a project's lifetime policy allows."""


# The latest a new key or PAT may expire: ten years on (3660 days, leap days and a margin
# included). The one limit for every way an expiry is given: the dashboard's forms,
# /v1/api-keys, createapikey, and these services under them. A later one is a slip (year
# 9999 from a date picker, a day count with a digit too many) that makes a secret outlive
# everyone who knows it exists.
LONGEST_LIFETIME = timedelta(days=3660)
TOO_FAR = "An expiry can be at most ten years from now, by %(last)s (UTC)."
NOT_AHEAD = "An expiry must be later than now."


def expiry_within_limit(expires_at: datetime | None, *, now: datetime) -> None:
    """OutOfPolicy if a token expiring at `expires_at` (None: never) would outlive
    LONGEST_LIFETIME from `now`. What the services check for every caller; an expiry
    already past makes a token that has ended, which harms nobody."""
    last = now + LONGEST_LIFETIME
    if expires_at is not None and expires_at > last:
        raise OutOfPolicy(TOO_FAR % {"last": f"{last:%-d %b %Y}"})


def expiry_checked(expires_at: datetime | None, *, now: datetime) -> None:
    """OutOfPolicy unless `expires_at` is None (never) or later than `now` and within
    LONGEST_LIFETIME: what a person or a script asking for a new token is told, beside
    the field (the forms, the API, createapikey), before the services check the limit
    again."""
    if expires_at is not None and expires_at <= now:
        raise OutOfPolicy(NOT_AHEAD)
    expiry_within_limit(expires_at, now=now)


class Revoked(Exception):
    """The personal access token was revoked: it stays for the record, unchanged."""


# The most working tokens (not revoked, not expired) a project's keys and a person's PATs
# may number. The key list and the PAT list show every working one on one page, the usage
# pages and exports name them, and nothing else bounds them: made by a script in a loop,
# they would make those pages unusable. Ended tokens do not count (their lists are paged).
MAX_WORKING_KEYS_PER_PROJECT = 100
MAX_WORKING_PATS_PER_PERSON = 50


class TooManyTokens(Exception):
    """The project has MAX_WORKING_KEYS_PER_PROJECT working keys, or the person
    MAX_WORKING_PATS_PER_PERSON working PATs. The message says so, and what to do."""


def too_many_keys_message() -> str:
    return (
        f"This project has {MAX_WORKING_KEYS_PER_PROJECT} working API keys, the most it may "
        "have. Revoke one it no longer needs first."
    )


def too_many_pats_message() -> str:
    return (
        f"You have {MAX_WORKING_PATS_PER_PERSON} working personal access tokens, the most a "
        "person may have. Revoke one you no longer need first."
    )


def working_keys_full(project: Project) -> bool:
    return ApiKey.objects.for_project(project).active().count() >= MAX_WORKING_KEYS_PER_PROJECT


def working_pats_full(user: User) -> bool:
    return PersonalAccessToken.objects.for_user(user).active().count() >= (
        MAX_WORKING_PATS_PER_PERSON
    )


class KeyNameTaken(Exception):
    """Another working key of the project has this name, whatever its case. Callers check
    first (key_name_taken) to say so beside the field; this is for the request that passed
    that check at the same moment as another that took the name (a form sent from two
    tabs, two API calls): the database's constraint refused it, and nothing it wrote is
    kept. Not a ValueError, which the API reads as a bad agent scope."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def permissions_or_all(permissions: list[str] | None, *, extra: Sequence[str] = ()) -> list[str]:
    """The permissions a new key or PAT gets, in canonical order: all of them when none
    were named (None), else the ones named. An empty list is a mistake, not "all".
    `extra`: what this kind of token may also be given, only by naming it (a PAT's keys)."""
    if permissions is None:
        return list(ALL_PERMISSIONS)
    known = [*ALL_PERMISSIONS, *extra]
    unknown = set(permissions) - set(known)
    if unknown:
        raise ValueError(f"Unknown permissions: {', '.join(sorted(unknown))}")
    if not permissions:
        raise ValueError("A restricted token needs at least one permission.")
    return [p for p in known if p in permissions]


def _by_a_member(project: Project, by: User | None) -> None:
    """A change a person makes to the project's credentials: they are a member until it
    commits (member_hold; NoLongerAMember). None: no person (a script, a report)."""
    if by is not None:
        member_hold(project=project, user=by)


def token_revoke(
    token: Token,
    *,
    action: str,
    by: User | None,
    project: Project | None,
    ip: str | None,
    metadata: dict[str, Any] | None = None,
) -> bool:
    """Revoke `token` of any kind now and record it, once: revoking it again records
    nothing. Committed with the caller's transaction, so the next call with it is refused
    on every worker. The one way every revocation goes (pages, API, reported leaks)."""
    revoked = token.revoke(by=by)
    if revoked:
        changed(token.change_identity)
        audit_record(
            action=action, actor=by, project=project, target=token, ip=ip, metadata=metadata
        )
    return revoked


def _lifetime(token: ApiKey | PersonalAccessToken) -> dict[str, Any]:
    """What a new key or PAT may do and until when, for its audit event."""
    expires_at = token.expires_at
    return {
        "permissions": token.permissions,
        "expires_at": expires_at.isoformat() if expires_at else None,
        **_scope(token),
    }


def _scope(token: Token) -> dict[str, Any]:
    """Its agent scope, for audit events: nothing when it has none."""
    scope: dict[str, Any] = {}
    if token.agent_names:
        scope["agents"] = token.agent_names
    if token.agent_actions:
        scope["agent_actions"] = token.agent_actions
    return scope


def agent_scope_checked(
    agent_names: list[str] | None, agent_actions: list[str] | None
) -> tuple[list[str], list[str]]:
    """The scope as stored, or ValueError: names as an agent's, actions known."""
    names, problems = parse_agent_names("\n".join(agent_names or []))
    if problems:
        raise ValueError(" ".join(problems))
    actions = list(dict.fromkeys(agent_actions or []))
    unknown = [a for a in actions if a not in AGENT_ACTIONS]
    if unknown:
        raise ValueError(f"Unknown agent actions: {', '.join(unknown)}")
    # Both actions named is no limit at all: stored as none, like every unscoped token.
    return names, ([] if set(actions) == set(AGENT_ACTIONS) else actions)


KEY_NAME_MAX = 100  # ApiKey.name's and PersonalAccessToken.name's max_length


def key_name_normal(name: str) -> str:
    """A key's (or PAT's) name as it is kept and compared: composed (NFC) and without
    surrounding space. “Café” typed with a combining accent is the same name as with é, in
    every list and in the constraint; kept as typed, the database would see two."""
    return unicodedata.normalize("NFC", name).strip()


def token_name_checked(name: str) -> str:
    """A key's or PAT's `name` as kept (key_name_normal), or ValidationError if it is not
    one line of visible text of 1 to KEY_NAME_MAX characters holding no token (composing
    can lengthen a name: क़ is kept as two characters). Checked by every service that names
    a key or PAT, so no caller skips it; the forms and the API say so beside their field
    first."""
    name = key_name_normal(name)
    # The length first: the token check reads a long non-ASCII text slowly (core.redact).
    if not name or len(name) > KEY_NAME_MAX:
        raise ValidationError(f"A name is 1 to {KEY_NAME_MAX} characters.", code="max_length")
    single_line(name)
    visible(name)
    no_secret(name)
    return name


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


class CannotRoll(Exception):
    """The key is revoked or expired: there is nothing to roll (make a new key)."""


class RolledMeanwhile(Exception):
    """The secret a form meant to replace was replaced already, by a request that went
    first: a double click, or the same form sent from two tabs. Its one new secret was
    shown there; this request changes nothing. `hint` is the secret's now."""

    def __init__(self, hint: str) -> None:
        super().__init__(hint)
        self.hint = hint


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
    api_key.previous_token_hash, api_key.previous_hint = api_key.token_hash, old_hint
    api_key.previous_expires_at = old_ends
    api_key.token_hash = token_hash(secret)
    api_key.hint = token_hint(secret, TokenKind.API_KEY)
    api_key.rolled_at, api_key.rolled_by = now, by
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
    before = list(token.allowed_networks)
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
    (RolledMeanwhile: a second send of the form would end the secret the first showed)."""
    # FOR UPDATE, as api_key_roll's: its new token_hash is under a unique index.
    pat = PersonalAccessToken.objects.select_for_update().get(pk=personal_token.pk)
    now = timezone.now()
    if pat.revoked_at is not None:
        raise CannotRoll(pat.end_reason_at(now) or "This personal access token was revoked.")
    if replacing is not None and replacing != pat.hint:
        raise RolledMeanwhile(pat.hint)
    expiry_within_limit(expires_at, now=now)
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
