"""Writing the usage log off the request's critical path.

Each API call appends one UsageEntry to an in-process buffer; a background thread writes
the buffer every USAGE_FLUSH_SECONDS in one transaction: a bulk insert of the rows, one
upsert per key-hour and per key-address for the roll-ups, and "last used" for keys not
marked in the last minute. One transaction per batch instead of per call is what keeps
logging cheap (see `make bench`).

A worker that is killed outright loses at most one interval of entries; gunicorn's
worker_exit hook (gunicorn.conf.py) and an atexit handler flush on orderly shutdown.
With USAGE_FLUSH_SECONDS = 0 every entry is written before the response (the tests run
this way, so what they read is already there).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction

from apikeys.models import ApiKey, ClientToken, PersonalAccessToken, Token
from usage.models import Outcome, UnattributedCalls, UsageHour, UsageIp, UsageRecord

logger = logging.getLogger(__name__)

LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_BUFFERED = 100_000


@dataclass(frozen=True, slots=True)
class UsageEntry:
    """One call, as the API layer saw it. All token ids are None for unattributed calls.

    A client token's call carries the client token and the key (or PAT) that minted it; a
    personal access token's call carries the PAT and, if it named one, the project.
    """

    created_at: datetime
    project_id: int | None
    api_key_id: int | None
    token_kind: str
    method: str
    path: str
    status: int
    error_code: str
    latency_us: int
    ip: str | None
    user_agent: str
    request_id: str
    client_token_id: int | None = None
    personal_token_id: int | None = None
    agent: str = ""

    @property
    def outcome(self) -> Outcome:
        return Outcome.of(self.status, self.error_code)

    @property
    def is_attributed(self) -> bool:
        return (self.api_key_id or self.client_token_id or self.personal_token_id) is not None


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


_OUTCOME_COLUMN = {
    Outcome.OK: "ok",
    Outcome.CLIENT_ERROR: "client_errors",
    Outcome.AUTH_FAILURE: "auth_failures",
    Outcome.REVOKED_KEY: "revoked_key_uses",
    Outcome.SERVER_ERROR: "server_errors",
}


def usage_write(entries: list[UsageEntry]) -> None:
    """Write a batch of entries and their roll-ups in one transaction."""
    attributed = [e for e in entries if e.is_attributed]
    unattributed = [e for e in entries if not e.is_attributed]
    # The roll-ups are per API key: a key's own calls and those of the tokens it minted.
    by_key = [e for e in attributed if e.api_key_id is not None]
    with transaction.atomic():
        UsageRecord.objects.bulk_create(
            [
                UsageRecord(
                    created_at=e.created_at,
                    project_id=e.project_id,
                    api_key_id=e.api_key_id,
                    client_token_id=e.client_token_id,
                    personal_token_id=e.personal_token_id,
                    token_kind=e.token_kind,
                    method=e.method,
                    agent=e.agent[:64],
                    path=e.path[:255],
                    status=e.status,
                    error_code=e.error_code,
                    outcome=e.outcome,
                    latency_us=e.latency_us,
                    ip=e.ip,
                    user_agent=e.user_agent[:255],
                    request_id=e.request_id,
                )
                for e in attributed
            ],
            batch_size=1000,
        )
        _upsert_hours(by_key)
        _upsert_ips(by_key)
        _mark_last_used(attributed)
        _count_unattributed(unattributed)


def _upsert_hours(entries: list[UsageEntry]) -> None:
    columns = list(_OUTCOME_COLUMN.values())
    rows: dict[tuple[int, int, datetime], Counter[str]] = defaultdict(Counter)
    for e in entries:
        row = rows[(e.project_id, e.api_key_id, _hour(e.created_at))]  # type: ignore[index]
        row["requests"] += 1
        row[_OUTCOME_COLUMN[e.outcome]] += 1
        row["latency_us_total"] += e.latency_us
    if not rows:
        return
    table = UsageHour._meta.db_table
    counted = ["requests", *columns, "latency_us_total"]
    names = ", ".join(["project_id", "api_key_id", "hour", *counted])
    placeholders = ", ".join(["%s"] * (3 + len(counted)))
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in counted)
    sql = (
        f"INSERT INTO {table} ({names}) VALUES ({placeholders}) "
        f"ON CONFLICT (api_key_id, hour) DO UPDATE SET {updates}"
    )
    params: list[list[Any]] = [
        [project_id, key_id, _adapt(hour), *(row[c] for c in counted)]
        for (project_id, key_id, hour), row in rows.items()
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _upsert_ips(entries: list[UsageEntry]) -> None:
    seen: dict[tuple[int | None, int | None, str], list[Any]] = {}
    for e in entries:
        if not e.ip:
            continue
        key = (e.project_id, e.api_key_id, e.ip)
        if key in seen:
            first, last, count = seen[key]
            seen[key] = [min(first, e.created_at), max(last, e.created_at), count + 1]
        else:
            seen[key] = [e.created_at, e.created_at, 1]
    if not seen:
        return
    table = UsageIp._meta.db_table
    sql = (
        f"INSERT INTO {table} (project_id, api_key_id, ip, first_seen, last_seen, requests) "
        f"VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (api_key_id, ip) DO UPDATE SET "
        f"first_seen = CASE WHEN excluded.first_seen < {table}.first_seen "
        f"THEN excluded.first_seen ELSE {table}.first_seen END, "
        f"last_seen = CASE WHEN excluded.last_seen > {table}.last_seen "
        f"THEN excluded.last_seen ELSE {table}.last_seen END, "
        f"requests = {table}.requests + excluded.requests"
    )
    params: list[list[Any]] = [
        [project_id, key_id, ip, _adapt(first), _adapt(last), count]
        for (project_id, key_id, ip), (first, last, count) in seen.items()
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _mark_last_used(entries: list[UsageEntry]) -> None:
    """ "Last used" (time and address) of each token that made a successful call: at most
    one write a minute per token, whatever the request rate."""
    latest: dict[tuple[type[Token], int], UsageEntry] = {}
    for e in entries:
        if e.outcome is not Outcome.OK:
            continue
        # A client token's call marks the client token, not the key that minted it.
        target: tuple[type[Token], int]
        if e.client_token_id is not None:
            target = (ClientToken, e.client_token_id)
        elif e.personal_token_id is not None:
            target = (PersonalAccessToken, e.personal_token_id)
        elif e.api_key_id is not None:
            target = (ApiKey, e.api_key_id)
        else:
            continue
        if target not in latest or e.created_at > latest[target].created_at:
            latest[target] = e
    for (model, pk), e in latest.items():
        model._default_manager.filter(pk=pk).exclude(
            last_used_at__gt=e.created_at - LAST_USED_RESOLUTION
        ).update(last_used_at=e.created_at, last_used_ip=e.ip)


def _count_unattributed(entries: list[UsageEntry]) -> None:
    counts = Counter((_hour(e.created_at), e.error_code) for e in entries)
    if not counts:
        return
    table = UnattributedCalls._meta.db_table
    sql = (
        f"INSERT INTO {table} (hour, error_code, count) VALUES (%s, %s, %s) "
        f"ON CONFLICT (hour, error_code) DO UPDATE SET count = {table}.count + excluded.count"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, [[_adapt(h), code, n] for (h, code), n in counts.items()])


def _adapt(moment: datetime) -> Any:
    """Raw SQL needs the same datetime form the ORM stores (SQLite keeps text)."""
    return connection.ops.adapt_datetimefield_value(moment)


class UsageBuffer:
    """Entries waiting to be written, and the thread that writes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[UsageEntry] = []
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def add(self, entry: UsageEntry) -> None:
        interval = settings.USAGE_FLUSH_SECONDS
        if interval <= 0:
            usage_write([entry])
            return
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's thread does not exist here
                self._entries, self._thread, self._pid = [], None, os.getpid()
            self._entries.append(entry)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, args=(interval,), name="usage-flush", daemon=True
                )
                self._thread.start()

    def flush(self) -> int:
        """Write what is buffered now. Returns how many entries were written.

        If the batch fails, its entries are tried one by one: one bad entry is dropped
        (and logged) instead of blocking every entry after it. If none can be written,
        the database is down: all are kept for the next try, up to MAX_BUFFERED.
        """
        with self._lock:
            entries, self._entries = self._entries, []
        if not entries:
            return 0
        try:
            usage_write(entries)
            return len(entries)
        except Exception:
            logger.exception("usage log batch of %d failed; writing one by one", len(entries))
        written, failed = 0, []
        for entry in entries:
            try:
                usage_write([entry])
                written += 1
            except Exception:
                failed.append(entry)
        if written:
            for entry in failed:
                logger.error("usage entry %s dropped: it cannot be written", entry.request_id)
            return written
        with self._lock:
            self._entries[:0] = failed
            overflow = len(self._entries) - MAX_BUFFERED
            if overflow > 0:  # a database down for long: bound the memory
                del self._entries[:overflow]
                logger.error("usage log buffer full; dropped %d oldest entries", overflow)
        return 0

    def _run(self, interval: float) -> None:
        while True:
            time.sleep(interval)
            self.flush()
            close_old_connections()


usage_buffer = UsageBuffer()
atexit.register(usage_buffer.flush)
