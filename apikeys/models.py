"""The three kinds of token: API keys, client tokens and personal access tokens.

Each stores only a keyed hash of its token (apikeys/tokens.py makes and hashes them).
Where things happen: a token is created in apikeys/services.py, checked by the API in
api/authentication.py, and each call it makes is logged by usage/writer.py.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import (
    Aggregate,
    Count,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
)
from django.db.models.expressions import Combinable
from django.db.models.functions import Coalesce, Least, Lower, Upper
from django.utils import timezone

from accounts.models import Membership, Project, User
from apikeys.scopes import describe as describe_agent_scope
from apikeys.tokens import BASE62, Secret, TokenKind, token_generate, token_hash, token_hint
from core.validators import single_line


class Permission(models.TextChoices):
    """What an API key may do (from the Reminix docs)."""

    AGENTS = "agents", "Agents: invoke and chat with all agents"
    READ = "read", "Read: view agent configuration and logs"
    WRITE = "write", "Write: deploy and update agents"


ALL_PERMISSIONS: list[str] = [p.value for p in Permission]


class PatPermission(models.TextChoices):
    """What only a personal access token can be given, and only by asking: it is never
    part of "full access" (a person's token for CLIs, not a server's key)."""

    KEYS = "keys", "Keys: list, create, roll, suspend and revoke the project's API keys"


PAT_ONLY_PERMISSIONS: list[str] = [p.value for p in PatPermission]


class TokenStatus(models.TextChoices):
    """A token's state at a moment, computed by Token.status_at() and never stored: what the
    pages' badges and the API's `status` field show."""

    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"  # API keys only: reversible, see ApiKey
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"


class Token(models.Model):
    """What every kind of token has: its keyed hash (never the token), a display hint,
    and a lifetime that ends at its expiry or its revocation, whichever comes first."""

    token_hash = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=40)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Its agent scope (apikeys/scopes.py): the agents it may use (empty: all) and how
    # (agents:invoke, agents:chat; empty: both). Read with the token, checked in memory.
    agent_names = models.JSONField(default=list, blank=True)
    agent_actions = models.JSONField(default=list, blank=True)
    # Written by the usage log's batch flush, at most once a minute per token.
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)

    # Which kind of token the model holds (its prefix), and what messages call it:
    # "This API key was revoked on …".
    kind: ClassVar[TokenKind]
    noun: ClassVar[str] = "token"

    class Meta:
        abstract = True

    def status_at(self, moment: datetime) -> TokenStatus:
        if self.revoked_at is not None:
            return TokenStatus.REVOKED
        if self.expires_at is not None and self.expires_at <= moment:
            return TokenStatus.EXPIRED
        return TokenStatus.ACTIVE

    @property
    def status(self) -> TokenStatus:
        return self.status_at(timezone.now())

    @property
    def agent_scope(self) -> str:
        """Its agent scope in words ("agents a, b; invoke only"); "" when it has none."""
        return describe_agent_scope(self)

    @property
    def change_identity(self) -> str:
        """How a change to this token is announced to the API's workers (core.invalidation)."""
        return f"{self.kind.value}:{self.pk}"

    def end_reason_at(self, moment: datetime, *, subject: str = "") -> str | None:
        """Why this token no longer works at `moment`, or None while it does: the reason
        the API gives when it refuses the token, and the dashboard shows beside it."""
        subject = subject or f"This {self.noun}"
        status = self.status_at(moment)
        if status is TokenStatus.REVOKED:
            assert self.revoked_at is not None
            return f"{subject} was revoked on {self.revoked_at:%-d %b %Y, %H:%M} UTC."
        if status is TokenStatus.EXPIRED:
            assert self.expires_at is not None
            return f"{subject} expired on {self.expires_at:%-d %b %Y, %H:%M} UTC."
        return None

    def revoke(self, *, by: User | None) -> bool:
        """Revoke now, unless already revoked. True if this call revoked it (see
        TokenQuerySet.revoke); the instance then reads revoked too."""
        manager = type(self)._default_manager
        changed = manager.filter(pk=self.pk).revoke(by=by)  # type: ignore[attr-defined]
        if changed:
            self.refresh_from_db(fields=["revoked_at", "revoked_by"])
        return bool(changed)


class PermissionsMixin:
    """For tokens that carry permissions: a list of Permission values."""

    permissions: list[str]

    @property
    def is_restricted(self) -> bool:
        return not set(ALL_PERMISSIONS) <= set(self.permissions)

    def has_permission(self, permission: str) -> bool:
        return permission in self.permissions

    def permission_labels(self) -> list[str]:
        return [p for p in [*ALL_PERMISSIONS, *PAT_ONLY_PERMISSIONS] if self.has_permission(p)]


class TokenQuerySet[T: Token](models.QuerySet[T]):
    """What every kind of token shares: making one, which ones still work, ending them."""

    def mint(self, **fields: Any) -> tuple[T, Secret]:
        """A new token of this model's kind, and its secret: returned once, kept nowhere
        (only its keyed hash and its hint are stored). As djangorestframework-api-key's
        `create_key()`: the object and the secret, together, once."""
        kind = self.model.kind
        secret = token_generate(kind)
        token = self.create(token_hash=token_hash(secret), hint=token_hint(secret, kind), **fields)
        return token, secret

    def active(self) -> TokenQuerySet[T]:
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
        )

    def unrevoked(self) -> TokenQuerySet[T]:
        """Not revoked (an expired one included)."""
        return self.filter(revoked_at__isnull=True)

    def ended(self) -> TokenQuerySet[T]:
        """Revoked or expired: what active() leaves out."""
        return self.filter(Q(revoked_at__isnull=False) | Q(expires_at__lte=timezone.now()))

    def revoke(self, *, by: User | None) -> int:
        """Revoke every token here that is not revoked yet, now. Returns how many.

        A conditional UPDATE: two revokes racing cannot both claim a token. It announces
        nothing to the API's workers, which may answer from a copy of the caller
        (core/invalidation.py): the services that call it (apikeys.services.token_revoke)
        announce the change.
        """
        return self.filter(revoked_at__isnull=True).update(revoked_at=timezone.now(), revoked_by=by)


class KeyOrder(models.TextChoices):
    """How the key list can be ordered: each choice's name in the page's address, its label."""

    NEWEST = "newest", "Newest first"
    OLDEST = "oldest", "Oldest first"
    NAME = "name", "Name, A to Z"
    LAST_USED = "last_used", "Last used first"
    EXPIRES = "expires", "Expiring first"


# Each order's ORDER BY. Ties fall back to the id, so a page boundary never drops or
# repeats a key.
_KEY_ORDER_BY: dict[KeyOrder, tuple[str | Combinable, ...]] = {
    KeyOrder.NEWEST: ("-created_at", "-id"),
    KeyOrder.OLDEST: ("created_at", "id"),
    KeyOrder.NAME: (Lower("name"), "id"),
    KeyOrder.LAST_USED: (F("last_used_at").desc(nulls_last=True), "-id"),
    KeyOrder.EXPIRES: (F("expires_at").asc(nulls_last=True), "id"),
}


class ApiKeyQuerySet(TokenQuerySet["ApiKey"]):
    """Reads of a project's API keys (by project, by name as the unique index compares it, the
    key list's search and orders, with open alert counts) and the bulk suspend and resume that
    ApiKey.suspend()/resume() use."""

    def for_project(self, project: Project) -> ApiKeyQuerySet:
        return self.filter(project=project)

    def in_order(self, order: KeyOrder) -> ApiKeyQuerySet:
        """In the key list's `order`, ties broken by id."""
        return self.order_by(*_KEY_ORDER_BY[order])

    def matching(self, q: str) -> ApiKeyQuerySet:
        """Keys whose name or notes hold `q`, or whose hint (now or before the last roll) does."""
        matches = Q(name__icontains=q) | Q(notes__icontains=q)
        # The key as the list shows it, or as someone told of a leak has it: any part of
        # it, or its start (with its prefix or without) and its end around an ellipsis
        # typed as dots, which then name the one hint: "reminix_sk_...VySb" is not every
        # key that starts reminix_sk_. Its secret before the last roll too: a leaked copy
        # may be the one that was replaced.
        start, ellipsis, end = re.sub(r"\.{2,}", "…", q).partition("…")
        for field in ("hint", "previous_hint"):
            if not ellipsis:
                matches |= Q(**{f"{field}__icontains": q})
            elif start or end:
                matches |= Q(**{f"{field}__icontains": start}) & Q(**{f"{field}__iendswith": end})
        return self.filter(matches)

    def named(self, name: str) -> ApiKeyQuerySet:
        """Keys called `name` whatever its case, compared as the constraint
        `apikey_unique_working_name` compares them (UPPER in the database, as `iexact`
        does on PostgreSQL), so the check in code and the index never disagree."""
        return self.alias(upper_name=Upper("name")).filter(upper_name=Upper(Value(name)))

    def suspend(self, *, by: User | None, reason: str) -> int:
        """Suspend every key here that is neither suspended nor ended (revoked or expired),
        now. Returns how many: like revoke(), a conditional UPDATE, so two suspends cannot
        both claim a key. It announces nothing to the API's workers: call
        apikeys.services.api_key_suspend."""
        return (
            self.active()
            .filter(suspended_at__isnull=True)
            .update(suspended_at=timezone.now(), suspended_by=by, suspended_reason=reason)
        )

    def resume(self) -> int:
        """Lift the suspension of every suspended key here that has not ended: a revoked
        or expired key never works again, so resuming it would only say it does (announced
        by apikeys.services.api_key_resume, not here)."""
        return (
            self.active()
            .filter(suspended_at__isnull=False)
            .update(suspended_at=None, suspended_by=None, suspended_reason="")
        )

    def _per_key(self, relation: str, figure: Aggregate, **where: Any) -> Coalesce:
        """One figure for each key from the rows of an app above that point at it
        (`relation`: their reverse accessor on ApiKey, so this app imports none of
        them), those `where` picks: a subquery of the statement that reads the keys,
        grouped on the key alone; 0 for a key with none."""
        rows = self.model._meta.get_field(relation).related_model
        assert isinstance(rows, type) and issubclass(rows, models.Model)
        per_key = (
            rows._default_manager.filter(api_key=OuterRef("pk"), **where)
            .order_by()
            .values("api_key")
            .annotate(n=figure)
            .values("n")
        )
        return Coalesce(Subquery(per_key), 0)

    def with_open_alert_counts(self) -> ApiKeyQuerySet:
        """Each key's open alerts as `open_flags` (the alerts app's Flag.api_key).

        Counted per key from the open alerts alone (the alerts app's flag_key_open
        index): a join of every flag, counting only the open ones, read the project's
        whole alert history (PostgreSQL hashed every tenant's) on each load of the list."""
        return self.annotate(
            open_flags=self._per_key("flags", Count("pk"), acknowledged_at__isnull=True)
        )

    def with_refusals_since_end(self) -> ApiKeyQuerySet:
        """Each key's calls refused because it had ended (revoked or expired) as
        `refusals_since_end`: what its usage page heads with ("3 calls after revocation",
        usage.key_usage.revoked_key_uses), for the lists that say it is still tried.

        Summed from the usage app's hourly roll-ups (ApiKey.usage_hours) from the hour the
        key ended: an index range of that key's hours alone (usagehour_unique_key_hour),
        as many rows as hours it was called in since, within the log's retention. A key
        that has not ended counts 0 (its end, if any, is ahead). Nothing is written for
        it: the API's refusal path stays as it was."""
        # The earlier of the two ends; Least over NULL is NULL on SQLite, so each stands in
        # for the other.
        ended = Least(Coalesce("revoked_at", "expires_at"), Coalesce("expires_at", "revoked_at"))
        its_hour_on = ExpressionWrapper(
            OuterRef("ended") - Value(timedelta(hours=1)), output_field=models.DateTimeField()
        )
        refused = self._per_key("usage_hours", Sum("revoked_key_uses"), hour__gt=its_hour_on)
        return self.alias(ended=ended).annotate(refusals_since_end=refused)


NAME_CONSTRAINT = "apikey_unique_working_name"


class ApiKey(PermissionsMixin, Token):
    """A project's server-side key (`reminix_sk_…`). Only its keyed hash is stored."""

    kind = TokenKind.API_KEY
    noun = "API key"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, validators=[single_line])
    permissions = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Suspended: refused (401 suspended_api_key, with the reason) until resumed. Unlike a
    # revocation it can be lifted, so a key under suspicion can be stopped at once without
    # breaking for good whatever depends on it.
    suspended_at = models.DateTimeField(null=True, blank=True)
    suspended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    suspended_reason = models.CharField(max_length=200, blank=True, validators=[single_line])
    # The last call refused because the key had been revoked or had expired: someone still
    # holds it. (last_used_at counts successful calls only.) With the address that call
    # came from (core.client_ip, as the usage log has it): where the key is still tried
    # from. Both written together by the usage writer, at most once a minute.
    last_refused_at = models.DateTimeField(null=True, blank=True)
    last_refused_ip = models.GenericIPAddressField(null=True, blank=True)
    # What the key is for, where it lives, whom to ask: for whoever finds it in a year.
    notes = models.CharField(max_length=500, blank=True)
    # Rolled: a new secret replaced the one before (token_hash, hint), which keeps working
    # until previous_expires_at so that whatever uses it can move over; calls with it
    # after that are refused, naming the new secret's hint. One key, one usage history:
    # both secrets act as this key. Rolling again ends the previous secret at once.
    previous_token_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    previous_hint = models.CharField(max_length=40, blank=True)
    previous_expires_at = models.DateTimeField(null=True, blank=True)
    rolled_at = models.DateTimeField(null=True, blank=True)
    rolled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Networks (CIDR, canonical; core/networks.py) the key may be used from; empty: any.
    # Read with the key, so checking it costs no round trip. Client tokens it mints are
    # used from browsers anywhere and are not bound by it.
    allowed_networks = models.JSONField(default=list, blank=True)
    # When the project's owners were emailed that it expires within a week, and a day.
    expiry_week_reminder_sent_at = models.DateTimeField(null=True, blank=True)
    expiry_day_reminder_sent_at = models.DateTimeField(null=True, blank=True)
    # An expired key's name is free again, but expiring is a moment, not a write: the
    # database cannot see it (an index cannot compare with now()). The create or rename
    # that takes the name of an expired key sets this on it, in its own transaction
    # (apikeys.services.key_name_claim), and the name leaves the unique index. The
    # database default lets code from before it insert during a deploy.
    name_released = models.BooleanField(default=False, db_default=False)
    # "Revoke all client tokens": every client token this key minted until then ends, those
    # it mints later work. The boundary is an id, not a time (no app instance's clock
    # decides): the highest client token id when it was done, under the key's row lock,
    # which each mint holds until it commits (apikeys.services.client_tokens_revoke_for_key).
    # One write to the key, however many it minted: the API reads it with the token.
    client_tokens_revoked_through = models.BigIntegerField(null=True, blank=True)
    client_tokens_revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "-created_at"], name="apikey_project_time")]
        constraints = [
            # Two working keys with one name differ only by their hint in every list and
            # alert (apikeys.forms._unique_key_name says so to the person). Checked in code
            # first for the message; this holds when two requests pass that check at once.
            models.UniqueConstraint(
                "project",
                Upper("name"),
                condition=Q(revoked_at__isnull=True, name_released=False),
                name=NAME_CONSTRAINT,
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint})"

    @property
    def refused_since_last_use(self) -> datetime | None:
        """When it was last refused as revoked or expired, if after its last successful call:
        an ended key still tried (a leak going on). None if it was not, or used since."""
        refused = self.last_refused_at
        if refused is None or (self.last_used_at is not None and refused <= self.last_used_at):
            return None
        return refused

    def has_permission(self, permission: str) -> bool:
        """As its row says, but never a personal token's own (`keys`): the service gives a
        key none, and a row written another way (by hand, an import) must not make a
        server's key manage the project's keys."""
        return permission not in PAT_ONLY_PERMISSIONS and super().has_permission(permission)

    def status_at(self, moment: datetime) -> TokenStatus:
        status = super().status_at(moment)
        if status is TokenStatus.ACTIVE and self.suspended_at is not None:
            return TokenStatus.SUSPENDED
        return status

    def suspension_message(self, *, subject: str = "") -> str:
        """What the API answers a suspended key (its reason included), and the page shows."""
        assert self.suspended_at is not None
        subject = subject or f"This {self.noun}"
        reason = self.suspended_reason.rstrip(".")
        reason = f" Reason: {reason}." if reason else ""
        return (
            f"{subject} was suspended on {self.suspended_at:%-d %b %Y, %H:%M} UTC by its "
            f"project.{reason} A project member can resume it."
        )

    def previous_secret_works_at(self, moment: datetime) -> bool:
        """The secret this key was rolled from still works at `moment` (the overlap)."""
        return self.previous_expires_at is not None and self.previous_expires_at > moment

    def previous_secret_end_reason(self) -> str:
        """What the API answers a call made with the secret this key was rolled from, once
        its overlap is over: when, and which secret replaced it."""
        ended = self.previous_expires_at or self.rolled_at
        when = f" on {ended:%-d %b %Y, %H:%M} UTC" if ended else ""
        return (
            f"This API key was rolled: the secret {self.previous_hint} stopped working"
            f"{when}. Use its new secret, {self.hint}."
        )

    def suspend(self, *, by: User | None, reason: str) -> bool:
        """Suspend now, unless suspended or ended already. True if this call did it."""
        changed = ApiKey.objects.filter(pk=self.pk).suspend(by=by, reason=reason)
        if changed:
            self.refresh_from_db(fields=["suspended_at", "suspended_by", "suspended_reason"])
        return bool(changed)

    def resume(self) -> bool:
        """Lift the suspension, unless there is none (or the key is revoked or expired)."""
        changed = ApiKey.objects.filter(pk=self.pk).resume()
        if changed:
            self.refresh_from_db(fields=["suspended_at", "suspended_by", "suspended_reason"])
        return bool(changed)


CLIENT_TOKEN_ID_PATTERN = "ctok_[0-9A-Za-z]{20}"


def client_token_public_id() -> str:
    """The id a client token is known by in the API and the dashboard (not guessable)."""
    return "ctok_" + "".join(secrets.choice(BASE62) for _ in range(20))


# The longest a client token lives (the API asks for ttlSeconds of at most this, and
# client_token_create refuses more): a token minted earlier ended by then.
CLIENT_TOKEN_MAX_TTL = 86400
# Beside it, for tokens whose ids and mint times are not quite in the same order (two
# minted at once commit in either order).
_MINT_ORDER_SLACK = timedelta(hours=1)


class ClientTokenQuerySet(TokenQuerySet["ClientToken"]):
    """Reads of client tokens: a project's, a key's, and alive_since(), those alive at some
    point after a moment (the client tokens page's last 7 days) without walking all a
    project minted."""

    def for_project(self, project: Project) -> ClientTokenQuerySet:
        return self.filter(project=project)

    def minted_by(self, api_key: ApiKey) -> ClientTokenQuerySet:
        """Those that `api_key` minted."""
        return self.filter(api_key=api_key)

    def working_of_key(self, api_key: ApiKey, moment: datetime) -> ClientTokenQuerySet:
        """Those `api_key` minted that still work at `moment` as far as the key goes
        (ClientToken.end_reason_at): not expired or revoked, not revoked with all of the
        key's, minted with a secret of the key that still works, the key itself working.
        Read from the key's row in the same statement, not from `api_key` as loaded (a
        roll or a revoke-all since would not be in it). What a revocation of the key ends,
        counted for its audit event."""
        previous_works = Q(api_key__previous_expires_at__gt=moment)
        secret_works = (
            Q(minted_with_hint=F("api_key__hint"))
            | (Q(minted_with_hint=F("api_key__previous_hint")) & previous_works)
            # Minted before secrets were recorded: with the secret the key had then.
            | (
                Q(minted_with_hint="")
                & (
                    Q(api_key__rolled_at__isnull=True)
                    | Q(created_at__gt=F("api_key__rolled_at"))
                    | previous_works
                )
            )
        )
        return (
            self.minted_by(api_key)
            .filter(revoked_at__isnull=True, expires_at__gt=moment)
            .filter(Q(api_key__expires_at__isnull=True) | Q(api_key__expires_at__gt=moment))
            .filter(
                Q(api_key__client_tokens_revoked_through__isnull=True)
                | Q(pk__gt=F("api_key__client_tokens_revoked_through"))
            )
            .filter(secret_works)
        )

    def alive_since(self, moment: datetime) -> ClientTokenQuerySet:
        """Those minted, or still alive, after `moment`. No token minted before `moment`
        less the longest lifetime is: the newest of those bounds their ids, so a walk of
        the project's tokens newest first (ctoken_project_newest) stops there instead of
        going through every token the project ever minted."""
        before = (
            self.filter(
                created_at__lte=moment - timedelta(seconds=CLIENT_TOKEN_MAX_TTL) - _MINT_ORDER_SLACK
            )
            .order_by("-created_at")  # one step of ctoken_project_time: any newest will do
            .values("pk")[:1]
        )
        return self.filter(Q(expires_at__gt=moment) | Q(created_at__gt=moment)).filter(
            pk__gt=Coalesce(Subquery(before), Value(0))
        )


class ClientToken(Token):
    """A short-lived token (`reminix_ct_…`) that a customer's backend mints for a browser.

    It reaches only the Client API, carries `context` (readable by the browser) and
    `server_context` (seen only by agents), and dies with the key or PAT that minted it.
    """

    kind = TokenKind.CLIENT_TOKEN
    noun = "client token"

    public_id = models.CharField(max_length=32, unique=True, default=client_token_public_id)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="client_tokens")
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="client_tokens"
    )
    personal_token = models.ForeignKey(
        "PersonalAccessToken",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="client_tokens",
    )
    context = models.JSONField(default=dict)
    server_context = models.JSONField(default=dict)
    expires_at = models.DateTimeField()
    # The hint of the secret that minted it, its API key's or its PAT's ("" before keys
    # could be rolled, or, for a PAT, regenerated unless recorded): a client token dies
    # with the secret that minted it when its key is rolled or its PAT regenerated.
    minted_with_hint = models.CharField(max_length=40, blank=True)
    # The membership (its id) of the PAT's person in the project when a PAT minted it: it
    # dies with that membership, and a later one (the person removed, then added again)
    # does not bring it back. An id, not a foreign key: the membership's row is deleted on
    # removal. None for a key's, and for a PAT's from before it was recorded (then: a
    # membership that began before the token did).
    minted_in = models.BigIntegerField(null=True, blank=True)

    objects = ClientTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["project", "-created_at"], name="ctoken_project_time"),
            models.Index(fields=["api_key", "-created_at"], name="ctoken_key_time"),
            # The client tokens page, newest first (apikeys/migrations/0029).
            models.Index(fields=["project", "-id"], name="ctoken_project_newest"),
        ]

    def __str__(self) -> str:
        return self.public_id

    def status_at(self, moment: datetime) -> TokenStatus:
        """Revoked with all its key's client tokens while it worked reads revoked, after
        its expiry too, as when that wrote to every token."""
        if self._revoked_with_its_key_while_it_worked() is not None:
            return TokenStatus.REVOKED
        return super().status_at(moment)

    def own_end_reason_at(self, moment: datetime, *, subject: str = "") -> str | None:
        """Its own expiry or revocation only: what the browser holding it may be told. A
        revocation of all its key had minted is its own: the browser is told when, as it
        was when that wrote to every token."""
        subject = subject or f"This {self.noun}"
        revoked_at = self._revoked_with_its_key_while_it_worked()
        reason = None if revoked_at is not None else super().end_reason_at(moment, subject=subject)
        if reason is None and (revoked_at := self.revoked_with_all_of_its_key_at) is not None:
            # Refused by its id whatever any clock reads: this instance's may run behind
            # the one that revoked them all, or the one that set its expiry.
            reason = f"{subject} was revoked on {revoked_at:%-d %b %Y, %H:%M} UTC."
        return reason

    @property
    def revoked_with_all_of_its_key_at(self) -> datetime | None:
        """When "Revoke all client tokens" of the key that minted it ended it; None if that
        did not (never done, or done before it was minted). Its id, not a time, says which
        were minted before (ApiKey.client_tokens_revoked_through)."""
        key = self.api_key
        if key is None or key.client_tokens_revoked_through is None:
            return None
        if self.pk is None or self.pk > key.client_tokens_revoked_through:
            return None
        return key.client_tokens_revoked_at or key.created_at

    def _revoked_with_its_key_while_it_worked(self) -> datetime | None:
        """revoked_with_all_of_its_key_at, unless it had expired or been revoked itself by
        then: what it is said to have ended by (never whether it ended: its id says that)."""
        revoked_at = self.revoked_with_all_of_its_key_at
        if revoked_at is None or self.expires_at <= revoked_at:
            return None
        if self.revoked_at is not None and self.revoked_at <= revoked_at:
            return None
        return revoked_at

    def revoke(self, *, by: User | None) -> bool:
        """As Token.revoke, and False for one revoked with all its key's: nothing written,
        nothing recorded (from the page, the API or a report of a leak), and the time its
        browser is told stays that of the revoke-all."""
        if self.revoked_at is None and self.revoked_with_all_of_its_key_at is not None:
            return False
        return super().revoke(by=by)

    @property
    def ends_at(self) -> datetime:
        """When it stops working, as far as is known now: its own expiry, or the end of
        the rolled key's previous secret that minted it, if sooner (what the list shows,
        and GET /client/token tells the browser)."""
        key = self.api_key
        if key is None or key.previous_expires_at is None:
            return self.expires_at
        if self.minted_with_hint != key.previous_hint:
            return self.expires_at
        return min(self.expires_at, key.previous_expires_at)

    def end_reason_at(
        self, moment: datetime, *, subject: str = "", minter_is_member: bool | None = None
    ) -> str | None:
        """Its own expiry or revocation, or the end of the key or PAT that minted it, or
        of its minter's place in the project (membership, and for a PAT the project's
        lifetime policy): a client token dies with its parent.
        `minter_is_member`: already known (the API reads it with the token); else asked."""
        revoked_at = self._revoked_with_its_key_while_it_worked()
        reason = None if revoked_at is not None else super().end_reason_at(moment, subject=subject)
        if reason is None:
            # By its id, whatever any clock reads (own_end_reason_at).
            revoked_at = revoked_at or self.revoked_with_all_of_its_key_at
        if reason is None and revoked_at is not None:
            reason = (
                f"Revoked with all its key's client tokens on {revoked_at:%-d %b %Y, %H:%M} UTC."
            )
        if reason is None and self.api_key is not None:
            reason = self.api_key.end_reason_at(
                moment, subject="The API key that minted this client token"
            )
        if reason is None:
            reason = self._minting_secret_end_reason(moment)
        if reason is None and self.personal_token is not None:
            pat = self.personal_token
            reason = pat.end_reason_at(
                moment, subject="The personal access token that minted this client token"
            )
            if minter_is_member is None:
                minter_is_member = pat.user.is_active and self._minted_in_membership_holds()
            if reason is None and not minter_is_member:
                reason = "The person whose token minted this client token left the project."
            if reason is None and pat.outlives_policy_of(self.project):
                # The project refuses the PAT itself on each call (its lifetime policy).
                reason = (
                    "The personal access token that minted this client token lives longer "
                    f"than the project allows ({self.project.max_pat_lifetime_days} days)."
                )
        return reason

    def _minted_in_membership_holds(self) -> bool:
        """The membership its PAT's person had when it was minted is still there (as the
        API's lookup asks, api/lookup.py)."""
        assert self.personal_token is not None
        memberships = Membership.objects.filter(
            user_id=self.personal_token.user_id, project_id=self.project_id
        )
        if self.minted_in is not None:
            return memberships.filter(pk=self.minted_in).exists()
        return memberships.filter(created_at__lte=self.created_at).exists()

    def _minting_secret_end_reason(self, moment: datetime) -> str | None:
        """A client token dies with the secret that minted it: its key's current secret, or
        the one before while that still works; or its PAT's current secret. Checked on
        every call, and nothing else ends it: a roll or a regenerate writes nothing per
        client token (whoever held a leaked key or PAT could otherwise have minted so many
        that rolling it timed out). One minted before secrets were recorded (no hint) was
        minted with the secret its parent had then: one a later roll or regenerate ended."""
        minted_with = self.minted_with_hint
        if self.personal_token is not None:
            pat = self.personal_token
            if minted_with == pat.hint:
                return None
            if not minted_with and not (
                pat.regenerated_at and self.created_at <= pat.regenerated_at
            ):
                return None
            return "The personal access token that minted this client token was regenerated."
        key = self.api_key
        if key is None or minted_with == key.hint:
            return None
        if not minted_with:
            if not (key.rolled_at and self.created_at <= key.rolled_at):
                return None
            # Minted with the secret the first roll replaced: the previous one, or (rolled
            # twice since) an older one, kept to the latest overlap. Such tokens predate
            # rolling, and live a day at most.
            minted_with = key.previous_hint
        if minted_with == key.previous_hint and key.previous_secret_works_at(moment):
            return None
        return (
            "The API key that minted this client token was rolled, and the secret that "
            "minted it no longer works."
        )


class PersonalAccessTokenQuerySet(TokenQuerySet["PersonalAccessToken"]):
    """Reads of personal access tokens: for_user() narrows to one person's, where their tokens
    page, a token's usage page and the limit on working tokens all start."""

    def for_user(self, user: User) -> PersonalAccessTokenQuerySet:
        return self.filter(user=user)


class PersonalAccessToken(PermissionsMixin, Token):
    """A person's token (`reminix_pat_…`) for CLIs and scripts. It acts as its user: on
    each call it reaches only the projects the user is a member of at that moment,
    narrowed to `projects` when the token was restricted to some."""

    kind = TokenKind.PERSONAL_ACCESS_TOKEN
    noun = "personal access token"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="personal_tokens"
    )
    name = models.CharField(max_length=100, validators=[single_line])
    permissions = models.JSONField(default=list)
    projects = models.ManyToManyField(Project, blank=True, related_name="+")
    # Limited to `projects` when made. Kept apart from the list so that a restriction whose
    # projects are all deleted reaches nothing, not everything (fails closed).
    projects_restricted = models.BooleanField(default=False)
    expiry_reminder_sent_at = models.DateTimeField(null=True, blank=True)
    # As ApiKey.allowed_networks: where the token may be used from; empty: anywhere.
    allowed_networks = models.JSONField(default=list, blank=True)
    # When its current secret, and the expiry that came with it, were given (null: never
    # regenerated, so when it was made).
    regenerated_at = models.DateTimeField(null=True, blank=True)

    objects = PersonalAccessTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint})"

    @property
    def lifetime_from(self) -> datetime:
        """Where a project's lifetime policy measures it from: regenerating gives it a new
        secret and a new expiry, checked against every policy then, as a new token's is."""
        return self.regenerated_at or self.created_at

    def outlives_policy_of(self, project: Project) -> bool:
        """Whether `project`'s lifetime policy refuses it (checked on each call there, for
        it and for the client tokens it minted there)."""
        days = project.max_pat_lifetime_days
        return Project.lifetime_exceeds(days, self.lifetime_from, self.expires_at)

    def reachable_projects(self) -> models.QuerySet[Project]:
        """The projects it reaches now: its owner's, narrowed to those it was limited to."""
        reach = Project.objects.for_user(self.user)
        if self.projects_restricted:
            reach = reach.filter(pk__in=self.projects.values("pk"))
        return reach
