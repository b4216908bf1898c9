"""API keys (`reminix_sk_`): ApiKey, a project's server-side key, and its reads (the key
list's orders and search, by name as the unique index compares it, suspension in bulk)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import (
    Aggregate,
    Case,
    Count,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.expressions import Combinable
from django.db.models.functions import Coalesce, Least, Lower, Trunc, Upper
from django.utils import timezone

from accounts.models import Project, User
from apikeys.models.common import (
    PAT_ONLY_PERMISSIONS,
    PermissionsMixin,
    Token,
    TokenQuerySet,
    TokenStatus,
    token_json_checks,
)
from apikeys.tokens import TokenKind
from core.validators import single_line


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


# The start of the last hour a datetime can hold.
LAST_HOUR = datetime.max.replace(minute=0, second=0, microsecond=0, tzinfo=UTC)


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
        usage.key_usage.revoked_key_uses, which reads it here), for the lists that say it
        is still tried.

        The hour the key ended is counted from the log (ApiKey.usage), from the end to the
        end of that hour: its roll-up also holds the calls before the end that were refused
        as an ended key's (a client token of the key that expired on its own, a rolled
        secret past its overlap). Both bounds are named, so on PostgreSQL only that day's
        partition is read, along the key's time index (usage_key_errors_time), at most an
        hour of the key's refusals. From the next hour on, the usage app's hourly roll-ups
        (ApiKey.usage_hours) are summed: an index range of that key's hours alone
        (usagehour_unique_key_hour), as many rows as hours it was called in since, within
        the log's retention. A key that has not ended counts 0 (its end, if any, is ahead).
        Nothing is written for it: the API's refusal path stays as it was."""
        # The earlier of the two ends; Least over NULL is NULL on SQLite, so each stands in
        # for the other.
        ended = Least(Coalesce("revoked_at", "expires_at"), Coalesce("expires_at", "revoked_at"))
        # An end in the last hour of year 9999 (put there by hand) has no next hour: on
        # SQLite the addition, done in Python, overflowed and the key list answered 500.
        # Nothing is refused after it, so the last moment there is stands in for it.
        next_hour = Case(
            When(
                ended__lt=LAST_HOUR,
                then=ExpressionWrapper(
                    Trunc("ended", "hour", tzinfo=UTC) + Value(timedelta(hours=1)),
                    output_field=models.DateTimeField(),
                ),
            ),
            default=Value(datetime.max.replace(tzinfo=UTC)),
            output_field=models.DateTimeField(),
        )
        in_its_hour = self._per_key(
            "usage",
            Count("pk"),
            # usage.models.Outcome.REVOKED_KEY, the log's outcome the roll-up's
            # revoked_key_uses counts (this app imports none above it).
            outcome="revoked_key",
            created_at__gte=OuterRef("ended"),
            created_at__lt=OuterRef("next_hour"),
        )
        since = self._per_key(
            "usage_hours", Sum("revoked_key_uses"), hour__gte=OuterRef("next_hour")
        )
        return self.alias(ended=ended, next_hour=next_hour).annotate(
            refusals_since_end=in_its_hour + since
        )


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
            # alert (apikeys.forms.api_keys._unique_key_name says so to the person). Checked
            # in code first for the message; this holds when two requests pass that check
            # at once.
            models.UniqueConstraint(
                "project",
                Upper("name"),
                condition=Q(revoked_at__isnull=True, name_released=False),
                name=NAME_CONSTRAINT,
            ),
            *token_json_checks("apikey", lists=("permissions", "allowed_networks")),
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
