"""Keeping the usage log to a set age: daily partitions on PostgreSQL, pruning on both.

On PostgreSQL the log (apikeys_usagerecord) is partitioned by range of created_at, one
partition per UTC day, named for it: apikeys_usagerecord_p20261128 holds
[2026-11-28 00:00, 2026-11-29 00:00) UTC. A DEFAULT partition, apikeys_usagerecord_default,
takes any row that no day covers (a skewed clock, a test writing years back, a day whose
partition was never made), so an insert never fails for want of a partition. Migration
0009 built the table this way; `usage_partitions_ensure_ahead` (`manage.py
ensure_usage_partitions`, which run_scheduler runs daily at 01:00 UTC) makes each day's
partition DAYS_AHEAD days before it is needed. Partitions are not made at worker start:
the migration and the daily job keep two weeks in stock, and a day that still has none
costs nothing worse than rows in the default partition, which the next ensure moves into
their day.

Pruning (`usage_prune`, `manage.py prune_usage --older-than 90d`) removes the calls made
before a cut-off. On PostgreSQL each day entirely before it is dropped whole; the rows of
the default partition and of the one day that straddles the cut-off (if any) are deleted.
On SQLite it is a DELETE in batches. On both it then removes the roll-ups that summarise
only the pruned calls.

Schema changes to UsageRecord on PostgreSQL: AddField, AlterField and AddIndex work on the
partitioned table as on any other; a unique index or constraint must include created_at,
and an index cannot be built CONCURRENTLY on the parent.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial

from django.db import DatabaseError, OperationalError, connection, transaction
from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from core.batched_delete import delete_in_batches, delete_in_key_ranges
from core.db_errors import lock_timed_out
from usage.models import (
    ProjectAddressDay,
    ProjectAddressHour,
    ProjectUsageDay,
    ProjectUsageHour,
    UnattributedCalls,
    UsageHour,
    UsageIp,
    UsageRecord,
)
from usage.writer import usage_write_lock

logger = logging.getLogger(__name__)

TABLE = UsageRecord._meta.db_table
DEFAULT_PARTITION = f"{TABLE}_default"
DAYS_AHEAD = 14
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
# Dropping or attaching a partition takes a lock that every API write would queue behind;
# waiting briefly and trying again later beats stalling the API behind a long query.
LOCK_TIMEOUT = "2s"
LOCK_ATTEMPTS = 3
SQLITE_BATCH = 10_000
# Rows of the log deleted one by one on PostgreSQL (the default partition's, the day that
# straddles the cut-off), or moved out of the default partition into their day's new
# partition, go this many to a transaction: each well inside the statement timeout however
# many weeks of calls the default partition gathered.
POSTGRESQL_BATCH = 10_000
# Serialises partition changes between concurrent runs (two schedulers, a deploy and a job).
_ADVISORY_LOCK_ID = 7_201_511_028
# Taken by the making of a day's table beside the log, shared by each batch of detection
# (usage_rows_out_of_sight): a batch under way ends before a day's rows start to move.
_MOVE_LOCK_ID = 7_201_511_029
# How long the making of a day's table waits for detection's batch under way to end.
MOVE_LOCK_TIMEOUT = "60s"
# With the day (yyyymmdd) as second key: held on its session by the run moving that day's
# calls, from building its table to the attach (_day_moving). A run cut short loses it with
# its connection, so a day's table standing unattached with the lock free was left by one
# (usage_partitions_stranded), and one run at a time moves a day.
_MOVING_LOCK_CLASS = 720_151_103
_PARTITION_NAME = re.compile(rf"^{TABLE}_p([0-9]{{8}})$")
# A day's table standing beside the log that a run of ours made (_partition_stage): named
# for its day, with the CHECK of its range added in the transaction that made it, which the
# attach drops. A table merely so named (made by hand, restored from elsewhere: a day no
# calendar has, p99991231, another shape) holds none of the log's calls: finishing it
# failed the finisher and the daily job for good, and counting it paused detection for
# every tenant for good.
_OURS_UNATTACHED = (
    "pg_class c WHERE c.relkind = 'r' AND NOT c.relispartition AND c.relname ~ %s"
    " AND pg_table_is_visible(c.oid) AND EXISTS (SELECT 1 FROM pg_constraint k"
    " WHERE k.conrelid = c.oid AND k.contype = 'c' AND k.conname = c.relname || '_range')"
)
_OURS_PARAMS = [_PARTITION_NAME.pattern]
# ASCII digits alone, as every number in the settings: \d takes "٩٠" and "９０" too.
_AGE = re.compile(r"([0-9]{1,6})([dh])")
_LONGEST_AGE = timedelta(days=36_500)
# prune_usage keeps at least this without --force: the volume-spike check compares an
# hour with the key's trailing 7 days.
MIN_KEEP = timedelta(days=7)


class RetentionBusyError(Exception):
    """A partition could not be locked in time: the API or a long query held the table.
    Nothing is half done; run again later."""


# -- Ages -----------------------------------------------------------------------------------


def parse_age(text: str) -> timedelta:
    """`90d` or `36h` as a timedelta; ValueError, with a message for people, otherwise."""
    match = _AGE.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(
            f"{text!r} is not an age: write a whole number of days or hours, e.g. 90d or 36h."
        )
    number, unit = int(match[1]), match[2]
    age = timedelta(days=number) if unit == "d" else timedelta(hours=number)
    if age <= timedelta(0):
        raise ValueError("An age of zero would remove every call: give at least 1h.")
    if age > _LONGEST_AGE:
        raise ValueError("That is more than a hundred years: nothing would ever be pruned.")
    return age


def usage_cutoff(*, older_than: timedelta, now: datetime) -> datetime:
    """The first moment kept: the start of the UTC hour that was `older_than` ago.

    Whole hours, because the hourly roll-ups (UsageHour, UnattributedCalls) cannot be cut
    inside an hour: a row for an hour either goes with all of its calls or stays with them.
    So "older than 90d" keeps every call for at least 90 days and at most an hour more.
    """
    moment = (now - older_than).astimezone(UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


# -- Partitions (PostgreSQL) ----------------------------------------------------------------


def usage_is_partitioned() -> bool:
    """Whether the log is a partitioned table (PostgreSQL after migration 0009)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s))",
            [TABLE],
        )
        return bool(cursor.fetchone()[0])


def partition_name(day: date) -> str:
    return f"{TABLE}_p{day:%Y%m%d}"


def usage_partitions() -> dict[date, str]:
    """The daily partitions that exist, by day. Empty where the log is not partitioned."""
    if not usage_is_partitioned():
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s)",
            [TABLE],
        )
        names = [row[0] for row in cursor.fetchall()]
    days = {}
    for name in names:
        match = _PARTITION_NAME.match(name)
        if match:
            days[datetime.strptime(match[1], "%Y%m%d").date()] = name
    return days


def usage_partitions_ensure(*, start_day: date, end_day: date) -> list[str]:
    """Make the daily partition of each day from start_day to end_day (both included) that
    has none, and return the names made. Safe to run again, and while the API writes.

    Past days are fine: rows of such a day that sit in the default partition are moved into
    the new partition, a batch at a time, before it is attached (`_partition_create`).
    (PostgreSQL refuses to attach a range that the default partition still has rows for.)
    A day's table that a run cut short left unattached is finished first, whatever its
    day (usage_partitions_finish). A no-op on SQLite.
    """
    if not usage_is_partitioned():
        return []
    _default_partition_ensure()
    made = usage_partitions_finish()
    existing = usage_partitions()
    day = start_day
    while day <= end_day:
        if day not in existing and _partition_made_alone(day):
            made.append(partition_name(day))
        day += DAY
    return made


def _partition_made_alone(day: date) -> bool:
    """_partition_create(day), a database error of which stops no other day: a table of
    another shape standing at its name (made by hand, restored from elsewhere) failed the
    job at that day, every day, and no later day was made for any tenant. Said at ERROR,
    naming the table; a lock not had in time (RetentionBusyError) still ends the run."""
    try:
        return _partition_create(day)
    except DatabaseError:
        logger.exception(
            "Usage log: could not make or finish %s; the other days go on, and its calls "
            "stay in the default partition until it can be",
            partition_name(day),
        )
        return False


def usage_partitions_unattached() -> list[date]:
    """The days whose table stands beside the log, not attached: being moved into by a run,
    or left so by a run cut short (usage_partitions_stranded). Empty where the log is not
    partitioned."""
    if not usage_is_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT relname FROM {_OURS_UNATTACHED} ORDER BY relname",  # noqa: S608 (constant)
            _OURS_PARAMS,
        )
        names = [row[0] for row in cursor.fetchall()]
    days = []
    for name in names:
        with contextlib.suppress(ValueError):  # a name no day has (p20021399): not ours
            day = datetime.strptime(name[-8:], "%Y%m%d").date()
            if day < date.max:  # (whose range would end past any date)
                days.append(day)
    return days


def usage_partitions_stranded() -> list[date]:
    """The days whose table stands unattached with no run moving its calls: a run was cut
    short (killed, a deploy, the statement or lock timeout) between building it and the
    attach. Detection reads nothing until it is attached; usage_partitions_finish does
    that (`manage.py finish_usage_partitions`, every minute under run_scheduler)."""
    return _stranded(usage_partitions_unattached())


def _stranded(days: list[date]) -> list[date]:
    """Of `days` standing unattached, those no run holds the moving lock of."""
    if not days:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid::bigint = %s AND objsubid = 2",
            [_MOVING_LOCK_CLASS],
        )
        moving = {row[0] for row in cursor.fetchall()}
    return [day for day in days if _day_key(day) not in moving]


def usage_partitions_finish() -> list[str]:
    """Finish each day's table left unattached by a run cut short: move the rest of its
    calls and attach it; the names attached. A day another run is moving is left to it.
    Says at WARNING what it found: until then detection read nothing, for every tenant."""
    made = []
    days = usage_partitions_unattached()
    stranded = set(_stranded(days))
    for day in days:
        name = partition_name(day)
        if day in stranded:
            logger.warning(
                "Usage log: %s stood unattached, left by a partitions run cut short; detection "
                "is paused and its calls are off the call log until it is attached: finishing "
                "the move",
                name,
            )
        if _partition_made_alone(day):
            logger.info("Usage log: %s attached; detection reads on", name)
            made.append(name)
    return made


def usage_partitions_ensure_ahead(
    *, now: datetime | None = None, days: int = DAYS_AHEAD
) -> list[str]:
    """Partitions for today and the next `days` UTC days: what the daily job runs."""
    today = (now or timezone.now()).astimezone(UTC).date()
    return usage_partitions_ensure(start_day=today, end_day=today + timedelta(days=days))


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _with_lock_retries[T](action: Callable[[], T], what: str) -> T:
    """Run `action` in a transaction that gives up waiting for a lock after LOCK_TIMEOUT,
    a few times, serialised with other runs."""
    for attempt in range(LOCK_ATTEMPTS):
        if attempt:
            time.sleep(attempt)
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_LOCK_ID])
                return action()
        except OperationalError as error:
            if not lock_timed_out(error):
                raise
    raise RetentionBusyError(f"Could not lock the usage log to {what}; try again later.")


def _default_partition_ensure() -> None:
    q = connection.ops.quote_name

    def create() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s) IS NULL", [DEFAULT_PARTITION])
            if cursor.fetchone()[0]:
                cursor.execute(
                    f"CREATE TABLE {q(DEFAULT_PARTITION)} PARTITION OF {q(TABLE)} DEFAULT"
                )

    _with_lock_retries(create, "create its default partition")


def _partition_create(day: date) -> bool:
    """Make one day's partition; False if another run made it first.

    Rows of the day that sit in the default partition (written while the daily job had
    not run for longer than DAYS_AHEAD: today's, after downtime) are moved into it first,
    POSTGRESQL_BATCH to a transaction. Moved in one statement, and with the ATTACH then
    building the day's indexes over them and checking each against the range, 1,000,000
    of them took 42 s, past DB_STATEMENT_TIMEOUT, and the job failed at every run.

    So the day's table is built beside the log with the log's indexes and a CHECK of its
    range (`_partition_stage`), the rows move into it a batch at a time
    (`_partition_move_batch`: a row is in one table or the other, never both, never
    neither), and the ATTACH (`_partition_attach`) finds indexes to adopt and a
    constraint that proves the range, so it builds and checks nothing of the new table.
    It still scans the default partition, as PostgreSQL does to prove no row of the range
    is left there: a read, about 0.7 s per million rows. Moved rows are out of the log's
    reads until the attach, and detection reads nothing meanwhile (usage_rows_out_of_sight);
    a run cut short in between leaves them in the day's table, and the next run that
    finishes such tables (finish_usage_partitions, every minute; this job; prune_usage,
    which makes the same days first) moves the rest and attaches it. One run at a time
    moves a day (_day_moving): False, too, if another is moving it."""
    name = partition_name(day)
    with _day_moving(day) as ours:
        if not ours:
            return False
        if not _with_lock_retries(partial(_partition_stage, name, day), f"create {name}"):
            return False
        after = 0
        while (last := _partition_move_batch(name, day, after)) is not None:
            after = last
        return _with_lock_retries(partial(_partition_attach, name, day), f"attach {name}")


def _day_key(day: date) -> int:
    return int(f"{day:%Y%m%d}")


@contextlib.contextmanager
def _day_moving(day: date) -> Iterator[bool]:
    """Whether this run holds the day's moving lock (False: another run is moving the day),
    held on the session until the block ends, or the connection with a run cut short."""
    key = [_MOVING_LOCK_CLASS, _day_key(day)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s::int, %s::int)", key)
        ours = bool(cursor.fetchone()[0])
    try:
        yield ours
    finally:
        if ours:
            # A transaction broken by the failure that ends the block cannot unlock; the
            # lock then goes with the connection, which a broken job's run closes.
            with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s::int, %s::int)", key)


def _range_sql(day: date) -> tuple[str, list[datetime]]:
    return "created_at >= %s AND created_at < %s", [_midnight(day), _midnight(day + DAY)]


def _partition_stage(name: str, day: date) -> bool:
    """The day's table, not yet attached: made, or found where a run left it. False if it
    is attached already."""
    q = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT to_regclass(%s) IS NOT NULL, "
            "EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(%s))",
            [name, name],
        )
        exists, attached = cursor.fetchone()
        if attached:
            return False
        # No detection batch is under way from here: one that read past the rows about to
        # move would leave them behind its cursor (usage_rows_out_of_sight).
        cursor.execute(f"SET LOCAL lock_timeout = '{MOVE_LOCK_TIMEOUT}'")
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_MOVE_LOCK_ID])
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        if not exists:
            cursor.execute(
                f"CREATE TABLE {q(name)} (LIKE {q(TABLE)} INCLUDING CONSTRAINTS INCLUDING INDEXES)"
            )
            within, bounds = _range_sql(day)
            cursor.execute(
                f"ALTER TABLE {q(name)} ADD CONSTRAINT {q(name + '_range')} CHECK ({within})",
                bounds,
            )
    return True


def usage_rows_out_of_sight() -> bool:
    """Whether some of the log's rows are out of its reads for now: a day's table is being
    made beside the log, or was left unattached by a run cut short, holding rows moved out
    of the default partition (_partition_create), which reappear at its attach. Asked by
    detection at each batch, in the batch's transaction, which then reads nothing: those
    rows' ids lie below any cursor that moved on meanwhile, and they would never be
    checked. Shares the lock the making of such a table takes, so a batch that found none
    reads while no row can go out of sight. False where the log is not partitioned."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock_shared(%s)", [_MOVE_LOCK_ID])
        if not cursor.fetchone()[0]:
            return True
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {_OURS_UNATTACHED})",  # noqa: S608 (constant)
            _OURS_PARAMS,
        )
        return bool(cursor.fetchone()[0])


def _partition_columns() -> str:
    q = connection.ops.quote_name
    return ", ".join(q(f.column) for f in UsageRecord._meta.concrete_fields if f.column)


# A call moved into the day's table that is there already. The log's ON CONFLICT (usage/
# writer.py) does not see the day's table before it is attached: a call written again
# meanwhile (its stream entry delivered twice) lands in the default partition. It is the
# same call, and goes; moved, it broke the day's unique index and failed the job at every run.
_ONCE = "ON CONFLICT (request_id, created_at) DO NOTHING"


def _partition_move_batch(name: str, day: date, after: int) -> int | None:
    """Move the next POSTGRESQL_BATCH of the day's rows after id `after` from the default
    partition into the day's table, in one statement and transaction; the last id moved,
    or None when none is left. Found along the default partition's primary key (id,
    created_at), from where the last batch ended."""
    q = connection.ops.quote_name
    within, bounds = _range_sql(day)
    columns = _partition_columns()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT max(id) FROM (SELECT id FROM ONLY {q(DEFAULT_PARTITION)} "  # noqa: S608
            f"WHERE {within} AND id > %s ORDER BY id LIMIT %s) AS batch",
            [*bounds, after, POSTGRESQL_BATCH],
        )
        (last,) = cursor.fetchone()
        if last is None:
            return None
        cursor.execute(
            f"WITH moved AS (DELETE FROM ONLY {q(DEFAULT_PARTITION)} "  # noqa: S608
            f"WHERE {within} AND id > %s AND id <= %s RETURNING {columns}) "
            f"INSERT INTO {q(name)} ({columns}) SELECT {columns} FROM moved {_ONCE}",
            [*bounds, after, last],
        )
    return last


def _partition_attach(name: str, day: date) -> bool:
    """Attach the day's table; False if another run did. Writes into the default partition
    wait from the first statement: the day's rows that reached it since the batches (a
    call logged meanwhile, a transaction that took its id before a batch read) move
    first, few, and then none can arrive before the ATTACH proves there are none."""
    q = connection.ops.quote_name
    within, bounds = _range_sql(day)
    columns = _partition_columns()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(%s))", [name]
        )
        if cursor.fetchone()[0]:
            return False
        cursor.execute(f"LOCK TABLE ONLY {q(DEFAULT_PARTITION)} IN EXCLUSIVE MODE")
        cursor.execute(
            f"WITH moved AS (DELETE FROM ONLY {q(DEFAULT_PARTITION)} "  # noqa: S608
            f"WHERE {within} RETURNING {columns}) "
            f"INSERT INTO {q(name)} ({columns}) SELECT {columns} FROM moved {_ONCE}",
            bounds,
        )
        cursor.execute(
            f"ALTER TABLE {q(TABLE)} ATTACH PARTITION {q(name)} "
            f"FOR VALUES FROM ('{_midnight(day).isoformat()}') "
            f"TO ('{_midnight(day + DAY).isoformat()}')"
        )
        # The partition's bound says the same from now on.
        cursor.execute(f"ALTER TABLE {q(name)} DROP CONSTRAINT {q(name + '_range')}")
    return True


def _partition_drop(name: str) -> int:
    """Drop one day's partition whole; returns how many calls it held."""
    q = connection.ops.quote_name

    def drop() -> int:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {q(name)}")  # noqa: S608
            (rows,) = cursor.fetchone()
            cursor.execute(f"DROP TABLE {q(name)}")
        return rows

    return _with_lock_retries(drop, f"drop {name}")


# -- Pruning --------------------------------------------------------------------------------


@dataclass
class PruneReport:
    """What one run of usage_prune removed, for the command to print."""

    cutoff: datetime
    partitions_created: list[str] = field(default_factory=list)
    # Name and number of calls of each day dropped whole.
    partitions_dropped: list[tuple[str, int]] = field(default_factory=list)
    rows_deleted: int = 0  # deleted one by one: SQLite, or PostgreSQL's default/straddling days
    usage_hours: int = 0
    usage_ips: int = 0
    unattributed_hours: int = 0
    project_hours: int = 0
    project_days: int = 0

    @property
    def calls_removed(self) -> int:
        return self.rows_deleted + sum(rows for _, rows in self.partitions_dropped)


def usage_prune(*, older_than: timedelta, now: datetime | None = None) -> PruneReport:
    """Remove the calls made before usage_cutoff(older_than, now) and their roll-ups.
    Safe to run again, and while the API writes.

    The log goes first and the roll-ups after, each step committed on its own: were a run
    to stop between them, the roll-ups would only over-cover the log (an hour with no calls
    left), which the usage page tolerates; the other way round it would miss calls. The next
    run finishes the job. Roll-ups removed:
    - The hourly ones (UsageHour, UnattributedCalls, the project's) for hours before the
      cut-off: their calls are gone.
    - The project's daily ones for days before the cut-off's day; that day's, if the
      cut-off falls inside it, are counted again from the calls it keeps.
    - UsageIp rows last seen before the cut-off. An address seen since keeps its row, whose
      first_seen and requests may reach further back than the log now does: they mean "as
      far back as we keep" (first seen in what was kept when it was first seen).
    """
    now = now or timezone.now()
    report = PruneReport(cutoff=usage_cutoff(older_than=older_than, now=now))
    if usage_is_partitioned():
        report.partitions_created = usage_partitions_ensure_ahead(now=now)
        for day, name in sorted(usage_partitions().items()):
            if _midnight(day + DAY) <= report.cutoff:
                report.partitions_dropped.append((name, _partition_drop(name)))
        report.rows_deleted = _delete_in_batches_postgresql(report.cutoff)
    else:
        report.rows_deleted = _delete_in_batches(report.cutoff)

    # A bounded batch a statement (core.batched_delete): each table holds a row per key,
    # address or project and hour, so one tenant's flood (calls from a million addresses)
    # or weeks of the job not running made one DELETE outlast DB_STATEMENT_TIMEOUT, every
    # night, and nothing after it was pruned. Each batch commits on its own: a run cut
    # short leaves roll-ups that over-cover the log, which the next run finishes.
    cutoff = report.cutoff
    report.usage_hours = delete_in_key_ranges(UsageHour.objects.filter(hour__lt=cutoff))
    report.usage_ips = delete_in_key_ranges(UsageIp.objects.filter(last_seen__lt=cutoff))
    report.unattributed_hours = delete_in_batches(  # its unique index leads with the hour
        UnattributedCalls.objects.filter(hour__lt=cutoff), order_by="hour"
    )
    for model in (ProjectUsageHour, ProjectAddressHour):
        report.project_hours += delete_in_key_ranges(model.objects.filter(start__lt=cutoff))
    report.project_days = _prune_project_days(cutoff)
    return report


def _prune_project_days(cutoff: datetime) -> int:
    """Remove the days of the project's daily roll-ups before the cut-off's; if the cut-off
    falls inside a day, count that day's groups again from the calls left of it, under the
    writer's lock, so no batch adds to the day between the count and its replacement. The
    earlier days go first, a bounded batch at a time and outside that lock, which every
    API call's usage waits for."""
    day = cutoff.replace(hour=0)
    removed = 0
    for model in (ProjectUsageDay, ProjectAddressDay):
        removed += delete_in_key_ranges(model.objects.filter(start__lt=day))
    if cutoff == day:
        return removed
    with transaction.atomic():
        usage_write_lock()
        ProjectUsageDay.objects.filter(start=day).delete()
        ProjectAddressDay.objects.filter(start=day).delete()
        kept = UsageRecord.objects.filter(
            project__isnull=False, created_at__gte=cutoff, created_at__lt=day + DAY
        )
        ProjectUsageDay.objects.bulk_create(
            ProjectUsageDay(
                start=day,
                project_id=group["project_id"],
                token_kind=group["token_kind"],
                api_key_id=group["api_key_id"],
                personal_token_id=group["personal_token_id"],
                outcome=group["outcome"],
                agent=group["agent"],
                requests=group["n"],
                without_address=group["no_ip"],
                last_call=group["last"],
            )
            for group in kept.values(
                "project_id", "token_kind", "api_key_id", "personal_token_id", "outcome", "agent"
            )
            .annotate(
                n=Count("id"), no_ip=Count("id", filter=Q(ip__isnull=True)), last=Max("created_at")
            )
            .order_by()
        )
        ProjectAddressDay.objects.bulk_create(
            ProjectAddressDay(
                start=day,
                project_id=group["project_id"],
                ip=str(group["ip"]),
                outcome=group["outcome"],
                requests=group["n"],
                first_seen=group["first"],
                last_seen=group["last"],
            )
            for group in kept.filter(ip__isnull=False)
            .values("project_id", "ip", "outcome")
            .annotate(n=Count("id"), first=Min("created_at"), last=Max("created_at"))
            .order_by()
        )
    return removed


def _delete_in_batches_postgresql(cutoff: datetime) -> int:
    """What is left before the cut-off lives only in the default partition and the day that
    straddles the cut-off (PostgreSQL prunes each statement down to those two). Deleted in
    one statement, weeks of calls gathered in the default partition (a scheduler that was
    off) ran into the statement timeout on every run, and nothing after it was pruned.
    Each batch is a range of the primary key, from where the last ended: found and deleted
    through its index, never passing over the rows its predecessors deleted."""
    table = connection.ops.quote_name(TABLE)
    bound = (
        f"SELECT max(id) FROM (SELECT id FROM {table} "  # noqa: S608
        "WHERE created_at < %s AND id > %s ORDER BY id LIMIT %s) AS batch"
    )
    delete = f"DELETE FROM {table} WHERE created_at < %s AND id > %s AND id <= %s"  # noqa: S608
    deleted, after = 0, 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(bound, [cutoff, after, POSTGRESQL_BATCH])
            (last,) = cursor.fetchone()
            if last is None:
                return deleted
            cursor.execute(delete, [cutoff, after, last])
            deleted += cursor.rowcount
        after = last


def _delete_in_batches(cutoff: datetime) -> int:
    """SQLite: one short write transaction per batch, so API writes get the lock in between."""
    table = connection.ops.quote_name(TABLE)
    sql = (
        f"DELETE FROM {table} WHERE id IN "  # noqa: S608
        f"(SELECT id FROM {table} WHERE created_at < %s LIMIT %s)"
    )
    moment = connection.ops.adapt_datetimefield_value(cutoff)
    deleted = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [moment, SQLITE_BATCH])
            batch = cursor.rowcount
        deleted += batch
        if batch < SQLITE_BATCH:
            return deleted
