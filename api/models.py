"""Answers kept for Idempotency-Key retries (api/idempotency.py)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from accounts.models import Project


class IdempotencyRecord(models.Model):
    """The first answer to a write sent with an Idempotency-Key, replayed for 24 hours to
    a retry with the same key from the same project (see api/idempotency.py)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # SHA-256 of method, path and body: the same key for a different request is refused.
    fingerprint = models.CharField(max_length=64)
    # The token that sent it (Caller.token_identity): only that token gets the answer
    # again. Blank on records from before it was kept (and from an older release still
    # running beside this one during an upgrade: hence a default in the database).
    caller = models.CharField(max_length=64, blank=True, db_default="")
    # None while the first request is still running.
    status = models.PositiveSmallIntegerField(null=True)
    body = models.TextField(blank=True)
    # The answer carried a one-time secret (a new token), which is not kept: a retry is
    # told what was made instead of being handed the secret again.
    redacted = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "apikeys_idempotencyrecord"
        constraints = [
            models.UniqueConstraint(fields=["project", "key"], name="idempotency_unique_key")
        ]
        # The daily prune's: the oldest first, without reading the whole table.
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_at")]

    def __str__(self) -> str:
        return f"{self.project_id} {self.key}"
