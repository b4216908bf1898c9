"""Idempotency-Key on writes (POST, PUT, PATCH, DELETE): the same key from the same project
within 24 hours gets the first answer back instead of acting twice.

The first request claims the key (a unique row) before it runs, so a concurrent retry
is told to wait rather than acting in parallel; a claim whose request never finished (its
worker died) is given up after ABANDONED_AFTER. A write and its kept answer are one
transaction. Answers of 5xx and refusals raised as errors are not kept, and undo what
the view wrote: a retry of those runs again, as if for the first time. An answer that
carried a one-time secret (a new client token) is kept without it, and a retry is told
what was made.

Only the token that sent the first request gets its answer again. Another token of the
project sending the same key is refused rather than acting twice: a replay skips the
checks a view makes itself (an API key's agent scope, say), so handing the answer to
another token could show it what it may not see.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from accounts.models import Project
from api import errors
from api.models import IdempotencyRecord
from core.batched_delete import delete_in_batches
from core.redact import holds_secret_escaped, holds_token

if TYPE_CHECKING:
    from api.authentication import Caller

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
LIFETIME = timedelta(hours=24)
# A record dated further ahead than this was written while a host's clock ran ahead: it
# would never be LIFETIME old, so it would replay, and stay, for good.
FUTURE_SLACK = timedelta(days=1)
# Far longer than any request may run (gunicorn stops a worker after 30 s).
ABANDONED_AFTER = timedelta(minutes=2)
MAX_KEY_LENGTH = 200  # the stored key also carries its scope
# The attribute a view sets on a response whose body holds a one-time secret.
SECRET_FIELDS_ATTRIBUTE = "one_time_secret_fields"


def _fingerprint(request: HttpRequest) -> str:
    digest = hashlib.sha256()
    for part in (request.method or "", request.path, request.body):
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _claim(
    project: Project, key: str, fingerprint: str, caller: str
) -> tuple[IdempotencyRecord, bool]:
    """The record for (project, key), and whether this request created it."""
    for _ in range(2):
        try:
            with transaction.atomic():
                return (
                    IdempotencyRecord.objects.create(
                        project=project, key=key, fingerprint=fingerprint, caller=caller
                    ),
                    True,
                )
        except IntegrityError:
            existing = IdempotencyRecord.objects.filter(project=project, key=key).first()
            if existing is None:
                continue  # deleted between our insert and our read: try again
            now = timezone.now()
            # Dated further ahead than FUTURE_SLACK: what the daily prune forgets.
            expired = not now - LIFETIME <= existing.created_at <= now + FUTURE_SLACK
            abandoned = existing.status is None and existing.created_at < now - ABANDONED_AFTER
            if expired or abandoned:
                # Only that row: a retry that got there first and claimed afresh stays.
                IdempotencyRecord.objects.filter(
                    pk=existing.pk, created_at=existing.created_at, status=existing.status
                ).delete()
                continue
            return existing, False
    raise _in_progress("Another request with this Idempotency-Key got in first. Retry in a moment.")


# The code a client retries on (the reminix SDK retries a 409 with this code and no
# other, waiting Retry-After): the answer to wait for is coming, as Stripe's clients are
# told with their 409 for a key still in use.
IN_PROGRESS = "idempotency_in_progress"
RETRY_IN_PROGRESS_AFTER = 1


def _in_progress(message: str) -> errors.ApiError:
    return errors.ApiError(
        409, IN_PROGRESS, message, headers={"Retry-After": str(RETRY_IN_PROGRESS_AFTER)}
    )


def _replay(record: IdempotencyRecord, fingerprint: str, caller: str) -> HttpResponse:
    if record.caller and record.caller != caller:
        raise errors.invalid_request(
            "This Idempotency-Key was already used by another token of this project. Use a "
            "new key for this request."
        )
    if record.fingerprint != fingerprint:
        raise errors.invalid_request(
            "This Idempotency-Key was already used for a different request (method, path or "
            "body). Use a new key for a new request."
        )
    if record.status is None:
        raise _in_progress(
            "A request with this Idempotency-Key is still running. Retry in a moment."
        )
    if record.redacted:
        made = json.loads(record.body)
        raise errors.ApiError(
            409,
            "invalid_request",
            f"This Idempotency-Key already made {made.get('id', 'its object')}. Its token was "
            "shown once and is not shown again; send a new key to make another.",
        )
    response = HttpResponse(record.body, status=record.status, content_type="application/json")
    response["Idempotent-Replayed"] = "true"
    return response


def _holds_token(key: str) -> bool:
    """Whether an Idempotency-Key holds a token: whole, with a space a copy put inside
    it, percent-escaped ("reminix%5Fsk%5F…", a working token to whoever decodes it), or
    its 36 characters after the prefix, known by their checksum (apikeys.tokens). At most
    MAX_KEY_LENGTH characters, and only on a write that sends one."""
    return holds_token(key) or holds_secret_escaped(key)


def idempotent(
    request: HttpRequest, caller: Caller, run: Callable[[], HttpResponse]
) -> HttpResponse:
    """Run the write once per Idempotency-Key, replaying the first answer afterwards to
    the same token (Caller.token_identity).

    Keys are per project. A client token's are its own besides, so that a browser cannot
    claim a key the project's servers will use.
    """
    # META, not request.headers: that would parse every header of every API call.
    key = request.META.get("HTTP_IDEMPOTENCY_KEY")
    project = caller.project
    if key is None or request.method not in WRITE_METHODS or project is None:
        return run()
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise errors.invalid_field_value(
            "Idempotency-Key", f"must be 1 to {MAX_KEY_LENGTH} printable characters."
        )
    if _holds_token(key):
        # The key is kept as sent for a day, and a token is never kept at rest.
        raise errors.invalid_field_value(
            "Idempotency-Key",
            "holds a Reminix token. Send a key of your own (a UUID), and revoke that token "
            "if it was sent here by mistake.",
        )
    if caller.client_token is not None:
        key = f"ct:{caller.client_token.pk}:{key}"
    fingerprint = _fingerprint(request)
    identity = caller.token_identity
    record, claimed = _claim(project, key, fingerprint, identity)
    if not claimed:
        return _replay(record, fingerprint, identity)
    try:
        # The write and its kept answer commit together, or neither does: were the answer
        # lost after the write committed (the database gone in between), the client would
        # be told 503, retry, and act twice.
        with transaction.atomic():
            response = run()
            if response.status_code >= 500:
                transaction.set_rollback(True)  # failed: nothing of it stays
            else:
                _keep(record, response)
    except BaseException:
        _give_up(record)
        raise
    if response.status_code >= 500:
        _give_up(record)
    return response


def _give_up(record: IdempotencyRecord) -> None:
    """Free the key for a retry, unless it holds an answer by now. An error raised at the
    commit or after it (the connection dropped before COMMIT's reply came back; a callback
    run once it committed) may follow a write and an answer that did commit: deleting the
    claim then would let the retry act a second time."""
    IdempotencyRecord.objects.filter(pk=record.pk, status__isnull=True).delete()


def _keep(record: IdempotencyRecord, response: HttpResponse) -> None:
    body = response.content.decode()
    secret_fields = getattr(response, SECRET_FIELDS_ATTRIBUTE, ())
    if secret_fields:
        kept = {k: v for k, v in json.loads(body).items() if k not in secret_fields}
        body = json.dumps(kept)
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        status=response.status_code, body=body, redacted=bool(secret_fields)
    )


def idempotency_records_prune(*, now: datetime | None = None) -> int:
    """Remove the answers kept longer than LIFETIME, and those dated more than
    FUTURE_SLACK ahead; a retry after that acts anew. Returns how many were removed. Run
    daily (`manage.py prune_idempotency_records`).

    A bounded batch at a time along the created_at index (core.batched_delete): a day of a
    busy project's retried writes in one DELETE could outlast the statement timeout, fail
    the same way every day, and leave the table to grow for good. Each end of the range on
    its own, so that neither scan walks the day's records in between."""
    now = now or timezone.now()
    return sum(
        delete_in_batches(outside, order_by="created_at")
        for outside in (
            IdempotencyRecord.objects.filter(created_at__lt=now - LIFETIME),
            IdempotencyRecord.objects.filter(created_at__gt=now + FUTURE_SLACK),
        )
    )
