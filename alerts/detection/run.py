"""The run: `detect()` reads the usage log past the cursor (DetectionCursor) in id order
and in batches, puts each batch through every check, and moves the cursor with the flags
the batch raised, in one transaction; then unused keys, the owners' emails and the PATs'
notices. Which rows a run reads (`unread_rows`), and which of them it can read at all."""

from __future__ import annotations

import ipaddress
import logging
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Project
from alerts.detection.auth_bursts import _auth_bursts
from alerts.detection.blocked_networks import _blocked_networks
from alerts.detection.client_token_spread import _client_token_ips
from alerts.detection.emails import email_pending_flags
from alerts.detection.ended_tokens import _ended_tokens
from alerts.detection.keys_on_client_api import _keys_on_client_api
from alerts.detection.new_agents import _new_agents
from alerts.detection.new_networks import _new_networks
from alerts.detection.result import DetectionResult, _isolated
from alerts.detection.thresholds import _rules_of
from alerts.detection.unused_keys import _unused_keys
from alerts.detection.volume_spikes import _volume_spikes
from alerts.models import DetectionCursor
from alerts.token_networks import token_network_notices, token_networks_learn
from usage.models import UsageRecord
from usage.retention import partition_name, usage_partitions_stranded, usage_rows_out_of_sight
from usage.writer import usage_late_forget, usage_late_span

logger = logging.getLogger(__name__)


BATCH_SIZE = 10_000
# How far before its last read (and after now) the detector looks for rows committed
# since; a late batch (usage/writer.py LATE_AFTER, 5 minutes) is noted and read wherever
# in time its calls are.
READ_MARGIN = timedelta(hours=1)

FIELDS = (
    "id",
    "created_at",
    "project_id",
    "api_key_id",
    "client_token_id",
    "personal_token_id",
    "outcome",
    "status",
    "error_code",
    "ip",
    "agent",
    "path",
)


def detect(*, now: datetime | None = None, batch_size: int = BATCH_SIZE) -> DetectionResult:
    """Read the log past the cursor, raise flags, email owners. Safe to run again, and
    to run twice at once: the cursor moves only with the flags it produced, in one
    transaction per batch that locks the cursor's row."""
    now = now or timezone.now()
    result = DetectionResult()
    while True:
        with transaction.atomic():
            cursor, _ = DetectionCursor.objects.select_for_update().get_or_create(name="usage")
            if usage_rows_out_of_sight():
                # A day's calls moving between partitions: read on when they are back.
                _say_paused()
                break
            rows = list(unread_rows(cursor).order_by("id").values(*FIELDS)[:batch_size])
            if not rows:
                break
            _process(rows, now, result)
            cursor.last_id = rows[-1]["id"]
            usage_late_forget(up_to_id=cursor.last_id)
            cursor.updated_at = now
            cursor.save(update_fields=["last_id", "updated_at"])
            result.rows += len(rows)
        if len(rows) < batch_size:
            break
    _isolated("unused keys", lambda: _unused_keys(now, result), result)
    email_pending_flags(now, result)
    _notify_token_networks(now, result)
    return result


def _say_paused() -> None:
    """A move under way is routine (a minute per million calls, after downtime); a table a
    run cut short left unattached pauses detection for every tenant until it is attached
    (finish_usage_partitions, every minute), which an operator must hear of."""
    stranded = [partition_name(day) for day in usage_partitions_stranded()]
    if stranded:
        logger.warning(
            "detector: paused: %s stands unattached, left by a partitions run cut short; "
            "detection reads on once it is attached (finish_usage_partitions)",
            ", ".join(stranded),
        )
    else:
        logger.info("detector: a day of the usage log is moving; the next run reads on")


def _notify_token_networks(now: datetime, result: DetectionResult) -> None:
    """Tell people of their PATs' new networks, each PAT in isolation."""
    sent, failed = token_network_notices(now, lambda what, run: _isolated(what, run, result))
    result.notices += sent
    result.failures += failed


def unread_rows(cursor: DetectionCursor) -> QuerySet[UsageRecord]:
    """The rows past the cursor, bounded in time as well as by id so that PostgreSQL reads
    only the partitions that can hold them, not every day of the log.

    A row past the cursor committed after the cursor's last read (at `updated_at`), and the
    writer notes every batch holding a call more than LATE_AFTER from its commit's time.
    So a row was made from `updated_at - READ_MARGIN` to `now + READ_MARGIN` (the margin
    leaves room for clocks that disagree), or lies in a noted batch. A new cursor reads
    the whole log."""
    rows = UsageRecord.objects.filter(id__gt=cursor.last_id)
    if not cursor.last_id:
        return rows
    since = cursor.updated_at - READ_MARGIN
    until = max(timezone.now(), cursor.updated_at) + READ_MARGIN
    late = usage_late_span(after_id=cursor.last_id)
    if late is not None:
        since, until = min(since, late[0]), max(until, late[1])
    return rows.filter(created_at__gte=since, created_at__lte=until)


def _process(rows: list[dict[str, Any]], now: datetime, result: DetectionResult) -> None:
    # A PAT's calls are its person's, whatever project they named (or none, or a deleted
    # one); an unreadable row is skipped here and counted below, or was never a project's.
    readable = partial(_readable, inet=connection.vendor == "postgresql")
    personal = [r for r in rows if r["personal_token_id"] and readable(r)]
    learn = partial(
        token_networks_learn,
        personal,
        now=now,
        run=result.token_networks,
        isolated=lambda what, run: _isolated(what, run, result),
    )
    _isolated("PAT networks", learn, result)
    # A call that reached no project (no token, or a personal access token refused before
    # its X-Project was read) belongs to no project's alerts.
    rows = [r for r in rows if r["project_id"] is not None]
    # A deleted project's keys, all revoked, may still be tried; nobody can see its alerts
    # any more, so none is raised (nor emailed, nor sent to a webhook) for them.
    deleted = set(
        Project.objects.deleted()
        .filter(pk__in={r["project_id"] for r in rows})
        .values_list("pk", flat=True)
    )
    rows = [r for r in rows if r["project_id"] not in deleted]
    unreadable = [r["id"] for r in rows if not readable(r)]
    if unreadable:
        # Not what our writer writes (SQLite keeps any text as an address; a stream entry
        # can be forged). Checked here, a row like that would undo a whole check, for
        # every project in the batch, and the cursor would move on past what it lost.
        logger.warning("detector: skipped %d unreadable rows: %s", len(unreadable), unreadable)
        result.failures += len(unreadable)
        skipped = set(unreadable)
        rows = [r for r in rows if r["id"] not in skipped]
    rules = _rules_of({r["project_id"] for r in rows})
    checks = {
        "ended tokens": _ended_tokens,
        "blocked networks": _blocked_networks,
        "keys on the Client API": _keys_on_client_api,
        "auth bursts": _auth_bursts,
        "new networks": _new_networks,
        "new agents": _new_agents,
        "volume spikes": _volume_spikes,
        "client token addresses": _client_token_ips,
    }
    for what, check in checks.items():
        _isolated(what, partial(check, rows, now, result, rules), result)


# Times the checks can reach a week either side of (a spike's baseline, an hour's end).
EARLIEST_READABLE = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_READABLE = datetime(9000, 1, 1, tzinfo=UTC)


def _readable(row: dict[str, Any], *, inet: bool = False) -> bool:
    """The row's address (if any) is an address and its time one the checks can use.
    `inet`: the address was read from PostgreSQL's inet column, which holds only
    addresses and networks, and writes a network with its "/"."""
    if not EARLIEST_READABLE <= row["created_at"] < LATEST_READABLE:
        return False
    if row["ip"] and inet:
        # Not parsed again: in a flood of calls from new IPv6 addresses, parsing every
        # row's address here was a third of detection's time past reading the rows.
        return "/" not in row["ip"]
    if row["ip"]:
        # Parsed only: network_around (the checks' /24 or /48) refuses what this refuses
        # and no more, at about twice the cost (four times before 5d1901f).
        try:
            ipaddress.ip_address(row["ip"])
        except ValueError:
            return False
    return True
