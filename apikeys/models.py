"""API keys, and the log of every API call made with them.

Where things happen: a key is created in services.py, checked in authentication.py, and
each call it makes is written by usage.py into UsageRecord (one row per call) and the
two roll-ups beside it (UsageHour, UsageIp) that keep the usage pages fast.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import Project, User
from apikeys.tokens import BASE62


class Permission(models.TextChoices):
    """What an API key may do (from the Reminix docs)."""

    AGENTS = "agents", "Agents: invoke and chat with all agents"
    READ = "read", "Read: view agent configuration and logs"
    WRITE = "write", "Write: deploy and update agents"


ALL_PERMISSIONS: list[str] = [p.value for p in Permission]


class TokenStatus(models.TextChoices):
    ACTIVE = "active", "Active"
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
    # Written by the usage log's batch flush, at most once a minute per token.
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)

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


class PermissionsMixin:
    """For tokens that carry permissions: a list of Permission values."""

    permissions: list[str]

    @property
    def is_restricted(self) -> bool:
        return set(self.permissions) != set(ALL_PERMISSIONS)

    def has_permission(self, permission: str) -> bool:
        return permission in self.permissions

    def permission_labels(self) -> list[str]:
        return [p for p in ALL_PERMISSIONS if p in self.permissions]


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def for_project(self, project: Project) -> ApiKeyQuerySet:
        return self.filter(project=project)

    def active(self) -> ApiKeyQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )


class ApiKey(PermissionsMixin, Token):
    """A project's server-side key (`reminix_sk_…`). Only its keyed hash is stored."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    permissions = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "-created_at"], name="apikey_project_time")]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint})"

    def revoke(self, *, by: User | None) -> bool:
        """Revoke now, unless already revoked. True if this call revoked it.

        A conditional UPDATE, so two revokes racing cannot both claim it, and the next
        API call on any worker reads the new state from the database.
        """
        now = timezone.now()
        changed = ApiKey.objects.filter(pk=self.pk, revoked_at__isnull=True).update(
            revoked_at=now, revoked_by=by
        )
        if changed:
            self.revoked_at, self.revoked_by = now, by
        return bool(changed)


class Outcome(models.TextChoices):
    """The one bucket each API call falls into, for filters and charts."""

    OK = "ok", "Succeeded"
    CLIENT_ERROR = "client_error", "Client error"
    AUTH_FAILURE = "auth_failure", "Auth or permission failure"
    REVOKED_KEY = "revoked_key", "Revoked or expired key"
    SERVER_ERROR = "server_error", "Server error"

    @classmethod
    def of(cls, status: int, error_code: str) -> Outcome:
        if status < 400:
            return cls.OK
        if error_code == "expired_api_key":
            return cls.REVOKED_KEY
        if status in (401, 403):
            return cls.AUTH_FAILURE
        if status >= 500:
            return cls.SERVER_ERROR
        return cls.CLIENT_ERROR


class UsageRecordQuerySet(models.QuerySet["UsageRecord"]):
    def for_key(self, api_key: ApiKey) -> UsageRecordQuerySet:
        return self.filter(api_key=api_key)

    def before(self, created_at: datetime, pk: int) -> UsageRecordQuerySet:
        """Keyset pagination, newest first: the rows after (created_at, pk).

        The plain `created_at <= …` is redundant with the OR, and is what lets the index
        scan start at the cursor: with the OR alone PostgreSQL walks and discards every
        newer row first (140 ms instead of 0.2 ms half-way down a million rows).
        """
        return self.filter(created_at__lte=created_at).filter(
            Q(created_at__lt=created_at) | Q(created_at=created_at, pk__lt=pk)
        )

    def after(self, created_at: datetime, pk: int) -> UsageRecordQuerySet:
        """Keyset pagination the other way: the rows newer than (created_at, pk)."""
        return self.filter(created_at__gte=created_at).filter(
            Q(created_at__gt=created_at) | Q(created_at=created_at, pk__gt=pk)
        )

    def newest_first(self) -> UsageRecordQuerySet:
        return self.order_by("-created_at", "-id")


class UsageRecord(models.Model):
    """One API call made with an identifiable token. Never holds the token or its header."""

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField()
    # None only for a personal access token's call that named no project (or was refused).
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="usage"
    )
    # A client token's calls carry both the token and the key that minted it, so the key's
    # usage page shows its tokens' traffic too.
    client_token = models.ForeignKey(
        "ClientToken", null=True, blank=True, on_delete=models.CASCADE, related_name="usage"
    )
    personal_token = models.ForeignKey(
        "PersonalAccessToken", null=True, blank=True, on_delete=models.CASCADE, related_name="usage"
    )
    token_kind = models.CharField(max_length=32)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=255)
    status = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=40, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    latency_us = models.PositiveIntegerField()
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=255, blank=True)
    request_id = models.CharField(max_length=40)

    objects = UsageRecordQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["api_key", "-created_at", "-id"], name="usage_key_time"),
            models.Index(fields=["project", "-created_at", "-id"], name="usage_project_time"),
            # The failed calls alone, newest first: filters on an error outcome or a 4xx/5xx
            # status walk this instead of every call of the key. Only failures pay for it.
            models.Index(
                fields=["api_key", "-created_at", "-id"],
                condition=~Q(outcome="ok"),
                name="usage_key_errors_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.method} {self.path} {self.status}"

    @property
    def latency_ms(self) -> float:
        return self.latency_us / 1000


class UsageHour(models.Model):
    """Calls per key per hour, by outcome: the charts and totals read this, not the log."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="usage_hours")
    hour = models.DateTimeField()
    requests = models.PositiveIntegerField(default=0)
    ok = models.PositiveIntegerField(default=0)
    client_errors = models.PositiveIntegerField(default=0)
    auth_failures = models.PositiveIntegerField(default=0)
    revoked_key_uses = models.PositiveIntegerField(default=0)
    server_errors = models.PositiveIntegerField(default=0)
    latency_us_total = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "hour"], name="usagehour_unique_key_hour")
        ]

    def __str__(self) -> str:
        return f"{self.api_key_id} {self.hour:%Y-%m-%d %H}:00 {self.requests}"


class UsageIp(models.Model):
    """Each address a key was used from, with first and last seen."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="usage_ips")
    ip = models.GenericIPAddressField()
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    requests = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "ip"], name="usageip_unique_key_ip")
        ]

    def __str__(self) -> str:
        return f"{self.api_key_id} {self.ip}"


class UnattributedCalls(models.Model):
    """Calls whose token could not be tied to a key (missing, malformed, unknown): counted
    per hour and error code, never stored one by one, so junk traffic cannot fill the log."""

    hour = models.DateTimeField()
    error_code = models.CharField(max_length=40)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hour", "error_code"], name="unattributed_unique")
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 {self.error_code} {self.count}"


def client_token_public_id() -> str:
    """The id a client token is known by in the API and the dashboard (not guessable)."""
    return "ctok_" + "".join(secrets.choice(BASE62) for _ in range(20))


class ClientTokenQuerySet(models.QuerySet["ClientToken"]):
    def for_project(self, project: Project) -> ClientTokenQuerySet:
        return self.filter(project=project)

    def active(self) -> ClientTokenQuerySet:
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


class ClientToken(Token):
    """A short-lived token (`reminix_ct_…`) that a customer's backend mints for a browser.

    It reaches only the Client API, carries `context` (readable by the browser) and
    `server_context` (seen only by agents), and dies with the key or PAT that minted it.
    """

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
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = ClientTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["project", "-created_at"], name="ctoken_project_time"),
            models.Index(fields=["api_key", "-created_at"], name="ctoken_key_time"),
        ]

    def __str__(self) -> str:
        return self.public_id


class PersonalAccessTokenQuerySet(models.QuerySet["PersonalAccessToken"]):
    def for_user(self, user: User) -> PersonalAccessTokenQuerySet:
        return self.filter(user=user)

    def active(self) -> PersonalAccessTokenQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )


class PersonalAccessToken(PermissionsMixin, Token):
    """A person's token (`reminix_pat_…`) for CLIs and scripts. It acts as its user: on
    each call it reaches only the projects the user is a member of at that moment,
    narrowed to `projects` when the token was restricted to some."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="personal_tokens"
    )
    name = models.CharField(max_length=100)
    permissions = models.JSONField(default=list)
    projects = models.ManyToManyField(Project, blank=True, related_name="+")
    expiry_reminder_sent_at = models.DateTimeField(null=True, blank=True)

    objects = PersonalAccessTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint})"


class IdempotencyRecord(models.Model):
    """The first answer to a write sent with an Idempotency-Key, replayed for 24 hours to
    a retry with the same key from the same project (see apikeys/idempotency.py)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # SHA-256 of method, path and body: the same key for a different request is refused.
    fingerprint = models.CharField(max_length=64)
    # None while the first request is still running.
    status = models.PositiveSmallIntegerField(null=True)
    body = models.TextField(blank=True)
    # The answer carried a one-time secret (a new token), which is not kept: a retry is
    # told what was made instead of being handed the secret again.
    redacted = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "key"], name="idempotency_unique_key")
        ]

    def __str__(self) -> str:
        return f"{self.project_id} {self.key}"
