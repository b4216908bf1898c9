"""What every kind of token is built on: the abstract Token model (its keyed hash, hint,
lifetime and revocation), TokenQuerySet (minting, which still work, ending them), the
permissions a key or PAT carries, and a token's status."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from apikeys.scopes import describe as describe_agent_scope
from apikeys.tokens import Secret, TokenKind, token_generate, token_hash, token_hint
from core.json_type import json_type_check


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


def token_json_checks(
    prefix: str, *, lists: tuple[str, ...] = (), objects: tuple[str, ...] = ()
) -> list[models.BaseConstraint]:
    """A token model's JSON columns hold what the services write, a list (its agent scope
    and `lists`) or an object (`objects`), and nothing else: for its `Meta.constraints`
    (apikeys/migrations/0033 repaired the rows from before, failing closed)."""
    return [
        *(
            json_type_check(field=field, json_type="array", name=f"{prefix}_{field}_is_array")
            for field in ("agent_names", "agent_actions", *lists)
        ),
        *(
            json_type_check(field=field, json_type="object", name=f"{prefix}_{field}_is_object")
            for field in objects
        ),
    ]


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
