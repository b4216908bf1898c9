"""Retention: prune_usage on both databases, and the usage log's daily partitions on PostgreSQL.

Time is passed in (`now=`): the calls below are written for days of 2029 and 2030, and the
prune is run as if it were 2030-03-15 14:20 UTC, so 90 days back is 2029-12-15 14:20 and
the cut-off is the start of that hour, 14:00.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from apikeys.models import ApiKey
from tests.conftest import usage_call
from usage import retention
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
from usage.retention import (
    DAYS_AHEAD,
    DEFAULT_PARTITION,
    parse_age,
    partition_name,
    usage_cutoff,
    usage_partitions,
    usage_partitions_ensure,
    usage_partitions_ensure_ahead,
    usage_prune,
)
from usage.writer import usage_write

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="partitions exist on PostgreSQL only"
)
sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's plain delete")

NOW = datetime(2030, 3, 15, 14, 20, tzinfo=UTC)
CUTOFF = datetime(2029, 12, 15, 14, 0, tzinfo=UTC)
NINETY_DAYS = timedelta(days=90)
US = timedelta(microseconds=1)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def log(key: ApiKey | None, when: datetime, request_id: str, ip: str = "10.0.0.1") -> None:
    """One call as the API logs it: the row and its roll-ups. No key: an unattributed call."""
    status, error_code = (200, "") if key else (401, "invalid_api_key")
    call = usage_call(when, key=key, status=status, error_code=error_code, ip=ip)
    usage_write([replace(call, request_id=request_id)])


def kept_calls() -> set[str]:
    return set(UsageRecord.objects.values_list("request_id", flat=True))


def partition_of(request_id: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM apikeys_usagerecord WHERE request_id = %s",
            [request_id],
        )
        return cursor.fetchone()[0]


def check_foreign_keys_now() -> None:
    """What COMMIT would do: the test's transaction never commits, and PostgreSQL will not
    drop a partition whose rows still have foreign-key checks pending (Django defers them)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return cursor.fetchone()[0]


@pytest.fixture
def history(api_key: tuple[ApiKey, str], project) -> ApiKey:
    """Calls on both sides of the cut-off, with their roll-ups."""
    key = api_key[0]
    if connection.vendor == "postgresql":
        # Days of their own for the calls of 14 to 16 December and 1 January; the rest of
        # the days have no partition, so those calls go to the default partition.
        usage_partitions_ensure(start_day=date(2029, 12, 14), end_day=date(2029, 12, 16))
        usage_partitions_ensure(start_day=date(2030, 1, 1), end_day=date(2030, 1, 1))
    old = {
        "years-ago": at(2021, 6, 1, 9),  # default partition
        "day-before": at(2029, 12, 14, 23, 59),  # a whole day before the cut-off
        "same-day-early": at(2029, 12, 15, 3, 15),  # the day that straddles the cut-off
        "just-before": CUTOFF - US,
    }
    new = {
        "at-cutoff": CUTOFF,
        "same-day-late": at(2029, 12, 15, 22),
        "new-year": at(2030, 1, 1, 12),
        "now": NOW,
        "clock-skew": at(2041, 1, 1),  # default partition
    }
    for request_id, when in {**old, **new}.items():
        log(key, when, request_id, ip="10.0.0.9" if request_id == "years-ago" else "10.0.0.1")
    # 10.0.0.1 is seen on both sides; 10.0.0.9 only long ago.
    log(None, at(2029, 12, 1, 8), "unattributed-old")
    log(None, at(2030, 1, 1, 8), "unattributed-new")
    check_foreign_keys_now()
    return key


def test_the_cutoff_is_the_start_of_the_hour_that_was_that_long_ago():
    assert usage_cutoff(older_than=NINETY_DAYS, now=NOW) == CUTOFF
    assert usage_cutoff(older_than=timedelta(hours=36), now=NOW) == at(2030, 3, 14, 2)
    assert usage_cutoff(older_than=NINETY_DAYS, now=at(2030, 3, 15)) == at(2029, 12, 15)


def test_prune_removes_exactly_the_calls_before_the_cutoff_and_their_rollups(history):
    report = usage_prune(older_than=NINETY_DAYS, now=NOW)

    assert report.cutoff == CUTOFF
    assert kept_calls() == {"at-cutoff", "same-day-late", "new-year", "now", "clock-skew"}
    assert report.calls_removed == 4
    hours = set(UsageHour.objects.values_list("hour", flat=True))
    assert hours == {
        CUTOFF,
        at(2029, 12, 15, 22),
        at(2030, 1, 1, 12),
        at(2030, 3, 15, 14),
        at(2041, 1, 1),
    }
    assert report.usage_hours == 4  # 2021-06-01 09h, 14 Dec 23h, 15 Dec 03h and 13h
    # An address seen since the cut-off stays, first seen as far back as was kept.
    (address,) = UsageIp.objects.all()
    assert (address.ip, address.first_seen) == ("10.0.0.1", at(2029, 12, 14, 23, 59))
    assert report.usage_ips == 1
    assert list(UnattributedCalls.objects.values_list("hour", flat=True)) == [at(2030, 1, 1, 8)]
    assert report.unattributed_hours == 1


def test_a_second_prune_finds_nothing_more_to_remove(history):
    usage_prune(older_than=NINETY_DAYS, now=NOW)
    kept = kept_calls()
    again = usage_prune(older_than=NINETY_DAYS, now=NOW)
    assert (again.calls_removed, again.partitions_dropped, again.usage_hours) == (0, [], 0)
    assert (again.usage_ips, again.unattributed_hours) == (0, 0)
    assert kept_calls() == kept


@postgresql_only
def test_prune_drops_the_partitions_of_whole_days_before_the_cutoff(history):
    report = usage_prune(older_than=NINETY_DAYS, now=NOW)

    dropped = dict(report.partitions_dropped)
    assert dropped[partition_name(date(2029, 12, 14))] == 1
    assert not table_exists(partition_name(date(2029, 12, 14)))  # dropped, not emptied
    # The straddling day keeps its partition and its later calls; the rest went one by one.
    assert table_exists(partition_name(date(2029, 12, 15)))
    assert partition_of("same-day-late") == partition_name(date(2029, 12, 15))
    assert report.rows_deleted == 3  # years-ago (default), same-day-early, just-before
    assert partition_of("clock-skew") == DEFAULT_PARTITION
    assert all(day >= date(2029, 12, 15) for day in usage_partitions())
    # Before pruning, the days ahead of `now` were made, as ensure_usage_partitions does.
    assert partition_name(date(2030, 3, 29)) in report.partitions_created


@sqlite_only
def test_sqlite_deletes_in_batches_until_none_is_left(history, monkeypatch):
    monkeypatch.setattr(retention, "SQLITE_BATCH", 2)
    report = usage_prune(older_than=NINETY_DAYS, now=NOW)
    assert (report.rows_deleted, report.partitions_dropped) == (4, [])
    assert len(kept_calls()) == 5


def test_prune_usage_prints_what_it_removed(api_key):
    key = api_key[0]
    log(key, at(2001, 1, 1), "ancient")
    log(key, at(2001, 1, 2), "ancient-too")
    out = StringIO()
    call_command("prune_usage", older_than="90d", stdout=out)
    text = out.getvalue()
    assert "Removed 2 calls in all." in text
    assert "1 key-hour" not in text and "2 key-hours" in text
    assert "Cut-off:" in text and "UTC" in text
    assert not UsageRecord.objects.exists()


@pytest.mark.parametrize(
    "age", ["", "90", "d", "-1d", "0d", "0h", "1.5d", "90 days", "2w", "36500001d", "1e3d"]
)
def test_prune_usage_refuses_an_age_it_cannot_read(age):
    with pytest.raises(CommandError):
        call_command("prune_usage", older_than=age, stdout=StringIO())


def test_prune_usage_insists_on_an_age():
    with pytest.raises(CommandError, match="older-than"):
        call_command("prune_usage", stdout=StringIO())


def test_bulk_create_still_returns_ids(api_key):
    key = api_key[0]
    rows = UsageRecord.objects.bulk_create(
        UsageRecord(
            created_at=when,
            api_key=key,
            project_id=key.project_id,
            token_kind="api_key",
            method="GET",
            path="/v1/agents",
            status=200,
            outcome="ok",
            latency_us=1,
            request_id=f"r{n}",
        )
        for n, when in enumerate([at(2001, 1, 1), NOW, at(2099, 1, 1)])
    )
    ids = [row.pk for row in rows]
    assert all(ids) and ids == sorted(ids) and len(set(ids)) == 3
    assert set(UsageRecord.objects.values_list("pk", flat=True)) == set(ids)


# -- PostgreSQL: the partitioned table ------------------------------------------------------


@postgresql_only
@pytest.mark.django_db
def test_the_log_is_partitioned_by_range_of_created_at_with_a_default_partition():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.partstrat, a.attname FROM pg_partitioned_table p "
            "JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] "
            "WHERE p.partrelid = 'apikeys_usagerecord'::regclass"
        )
        assert cursor.fetchall() == [("r", "created_at")]
        cursor.execute(
            "SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partdefid "
            "WHERE p.partrelid = 'apikeys_usagerecord'::regclass"
        )
        assert cursor.fetchall() == [(DEFAULT_PARTITION,)]
        cursor.execute(
            "SELECT array_agg(a.attname ORDER BY k.n) FROM pg_constraint c, "
            "unnest(c.conkey) WITH ORDINALITY k(attnum, n) "
            "JOIN pg_attribute a ON a.attnum = k.attnum "
            "WHERE c.conrelid = 'apikeys_usagerecord'::regclass AND c.contype = 'p' "
            "AND a.attrelid = c.conrelid"
        )
        assert cursor.fetchone()[0] == ["id", "created_at"]


@postgresql_only
@pytest.mark.django_db
def test_the_partitioned_table_keeps_its_indexes_and_foreign_keys():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "apikeys_usagerecord")
    for name in ("usage_key_time", "usage_project_time", "usage_key_errors_time"):
        assert constraints[name]["index"], name
    assert constraints["usage_key_time"]["columns"] == ["api_key_id", "created_at", "id"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_indexdef('usage_key_errors_time'::regclass)")
        assert "WHERE" in cursor.fetchone()[0]  # still partial: failed calls only
    foreign = {
        tuple(c["columns"]): c["foreign_key"] for c in constraints.values() if c["foreign_key"]
    }
    assert foreign == {
        ("project_id",): ("accounts_project", "id"),
        ("api_key_id",): ("apikeys_apikey", "id"),
        ("client_token_id",): ("apikeys_clienttoken", "id"),
        ("personal_token_id",): ("apikeys_personalaccesstoken", "id"),
    }


@postgresql_only
@pytest.mark.django_db
def test_partitions_exist_for_today_and_the_days_ahead():
    usage_partitions_ensure_ahead()  # what the daily job does; the migration made most
    today = datetime.now(UTC).date()
    wanted = {today + timedelta(days=n) for n in range(DAYS_AHEAD + 1)}
    assert wanted <= set(usage_partitions())


@postgresql_only
@pytest.mark.django_db
def test_ensure_usage_partitions_makes_the_missing_days_once():
    now = at(2031, 7, 1, 23, 59)
    made = usage_partitions_ensure_ahead(now=now)
    assert made == [partition_name(date(2031, 7, 1) + timedelta(days=n)) for n in range(15)]
    assert usage_partitions_ensure_ahead(now=now) == []
    out = StringIO()
    call_command("ensure_usage_partitions", stdout=out)
    assert out.getvalue().endswith("partitions created.\n")


@postgresql_only
def test_calls_far_in_the_past_or_future_land_in_the_default_partition(api_key):
    log(api_key[0], at(2001, 2, 3), "past")
    log(api_key[0], at(2099, 2, 3), "future")
    assert partition_of("past") == partition_of("future") == DEFAULT_PARTITION


@postgresql_only
def test_making_a_past_days_partition_moves_its_calls_out_of_the_default(api_key):
    log(api_key[0], at(2001, 2, 3, 12), "that-day")
    log(api_key[0], at(2001, 2, 4), "next-day")
    pk = UsageRecord.objects.get(request_id="that-day").pk

    assert usage_partitions_ensure(start_day=date(2001, 2, 3), end_day=date(2001, 2, 3)) == [
        "apikeys_usagerecord_p20010203"
    ]
    assert partition_of("that-day") == "apikeys_usagerecord_p20010203"
    assert UsageRecord.objects.get(request_id="that-day").pk == pk
    assert partition_of("next-day") == DEFAULT_PARTITION


@postgresql_only
def test_the_api_logs_calls_into_todays_partition(api, api_key):
    usage_partitions_ensure_ahead()
    response = api.post("/v1/agents/my-agent/invoke", {"prompt": "x"})
    assert response.status_code == 200
    record = UsageRecord.objects.get(request_id=response["X-Request-Id"])
    assert record.api_key_id == api_key[0].pk
    assert partition_of(record.request_id) == partition_name(record.created_at.date())


@sqlite_only
@pytest.mark.django_db
def test_ensure_usage_partitions_on_sqlite_does_nothing():
    out = StringIO()
    call_command("ensure_usage_partitions", stdout=out)
    assert "not partitioned" in out.getvalue()
    assert usage_partitions_ensure(start_day=date(2030, 1, 1), end_day=date(2030, 1, 9)) == []


def test_prune_usage_will_not_keep_less_than_a_week_unless_forced(db):
    with pytest.raises(CommandError, match="--force"):
        call_command("prune_usage", older_than="3d", stdout=StringIO())
    out = StringIO()
    call_command("prune_usage", older_than="3d", force=True, stdout=out)
    assert "Cut-off" in out.getvalue()


# Stands in for DB_STATEMENT_TIMEOUT, deterministically: a transaction that deletes more
# than two of the default partition's rows is cancelled as that timeout cancels it.
_TWO_ROWS_A_TRANSACTION = """
CREATE FUNCTION rv_test_deleting_slowly() RETURNS trigger AS $$
DECLARE n int := coalesce(nullif(current_setting('rv_test.deleted', true), ''), '0')::int + 1;
BEGIN
  PERFORM set_config('rv_test.deleted', n::text, true);
  IF n > 2 THEN
    RAISE EXCEPTION 'canceling statement due to statement timeout' USING ERRCODE = '57014';
  END IF;
  RETURN OLD;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER rv_test_deleting_slowly BEFORE DELETE ON apikeys_usagerecord_default
FOR EACH ROW EXECUTE FUNCTION rv_test_deleting_slowly();
"""


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_default_partition_too_big_to_empty_in_one_statement_is_pruned_in_batches(
    api_key, monkeypatch
):
    """Weeks without the daily job leave their calls in the default partition; 90 days on,
    prune_usage deleted them in one statement, which ran into the statement timeout on
    every night's run: the log, and its roll-ups (removed after it), grew for good."""
    for n in range(5):
        log(api_key[0], at(2001, 2, 3, n), f"old-{n}")
    log(api_key[0], at(2099, 2, 3), "future")
    monkeypatch.setattr(retention, "POSTGRESQL_BATCH", 2)
    with connection.cursor() as cursor:
        cursor.execute(_TWO_ROWS_A_TRANSACTION)
    try:
        report = usage_prune(older_than=timedelta(days=90))
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER rv_test_deleting_slowly ON apikeys_usagerecord_default")
            cursor.execute("DROP FUNCTION rv_test_deleting_slowly()")

    assert report.rows_deleted == 5
    assert kept_calls() == {"future"}


@pytest.mark.parametrize("age", ["٩٠d", "９０d", "۹۰d", "90d\u200b"])
def test_an_age_in_digits_other_than_ascii_is_refused_as_the_settings_refuse_them(age):
    """The regex's \\d took any script's digits ('٩٠d' was 90 days), where every number the
    settings read is ASCII digits alone (USAGE_RETENTION feeds this at each run)."""
    with pytest.raises(ValueError, match="is not an age"):
        parse_age(age)
    assert parse_age("90d") == timedelta(days=90)


ROLLUPS = (
    UsageHour,
    UsageIp,
    UnattributedCalls,
    ProjectUsageHour,
    ProjectAddressHour,
    ProjectUsageDay,
    ProjectAddressDay,
)


@pytest.fixture
def rollups_piled_up(api_key: tuple[ApiKey, str]) -> ApiKey:
    """Seven days' calls before the cut-off, each from an address of its own, and calls
    of the kept days on either side of them in the tables: a row of every roll-up per
    call, as a tenant's flood from many addresses leaves them, many times over."""
    key = api_key[0]
    log(key, at(2030, 1, 2, 3), "kept-first", ip="10.9.9.9")
    log(None, at(2030, 1, 2, 3), "kept-first-unattributed")
    for n in range(7):
        log(key, at(2029, 11, n + 1, n), f"old-{n}", ip=f"10.0.1.{n}")
        log(None, at(2029, 11, n + 1, n), f"old-unattributed-{n}")
    log(key, at(2030, 3, 1, 1), "kept-last", ip="10.9.9.8")
    log(None, at(2030, 3, 1, 1), "kept-last-unattributed")
    check_foreign_keys_now()
    return key


def roll_ups_left() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in ROLLUPS}


def test_roll_ups_piled_up_go_a_bounded_batch_a_statement(rollups_piled_up, monkeypatch):
    """Each roll-up went in one DELETE of everything before the cut-off: with enough of
    them (a flood from a million addresses, weeks without the job) longer than
    DB_STATEMENT_TIMEOUT, so the job failed every night and the tables grew for good."""
    monkeypatch.setattr("core.batched_delete.DELETE_BATCH", 3)
    tables = {model._meta.db_table for model in ROLLUPS}
    deleted: list[tuple[str, int]] = []

    def count(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.startswith("DELETE"):
            table = sql.split()[2].strip('"')
            if table in tables:
                deleted.append((table, context["cursor"].rowcount))
        return result

    with connection.execute_wrapper(count):
        report = usage_prune(older_than=NINETY_DAYS, now=NOW)

    assert deleted and all(rows <= 3 for _, rows in deleted)
    assert {table for table, rows in deleted if rows} == tables
    assert (report.usage_hours, report.usage_ips, report.unattributed_hours) == (7, 7, 7)
    assert (report.project_hours, report.project_days) == (14, 14)
    assert roll_ups_left() == {
        "UsageHour": 2,
        "UsageIp": 2,
        "UnattributedCalls": 2,
        "ProjectUsageHour": 2,
        "ProjectAddressHour": 2,
        "ProjectUsageDay": 2,
        "ProjectAddressDay": 2,
    }


# Stands in for DB_STATEMENT_TIMEOUT, deterministically: a DELETE of more than three rows
# of a roll-up is cancelled as that timeout cancels one over a pile.
_THREE_ROWS_A_STATEMENT = """
CREATE FUNCTION rv_test_deleting_slowly() RETURNS trigger AS $$
BEGIN
  IF (SELECT count(*) FROM gone) > 3 THEN
    RAISE EXCEPTION 'canceling statement due to statement timeout' USING ERRCODE = '57014';
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql;
"""


@postgresql_only
def test_roll_ups_longer_to_delete_than_the_statement_timeout_are_pruned(
    rollups_piled_up, monkeypatch
):
    monkeypatch.setattr("core.batched_delete.DELETE_BATCH", 3)
    with connection.cursor() as cursor:
        cursor.execute(_THREE_ROWS_A_STATEMENT)
        for model in ROLLUPS:
            cursor.execute(
                f"CREATE TRIGGER rv_test_deleting_slowly AFTER DELETE ON {model._meta.db_table} "
                "REFERENCING OLD TABLE AS gone FOR EACH STATEMENT "
                "EXECUTE FUNCTION rv_test_deleting_slowly()"
            )
    usage_prune(older_than=NINETY_DAYS, now=NOW)
    assert set(roll_ups_left().values()) == {2}
    assert kept_calls() == {"kept-first", "kept-last"}


@pytest.fixture
def a_day_in_the_default(api_key):
    """Five calls of 4 March 2002 in the default partition (no day of theirs existed when
    they were written: the daily job had not run for longer than its days ahead), and one
    of the next day's; the day's partition is dropped again after the test."""
    for n in range(5):
        log(api_key[0], at(2002, 3, 4, n), f"that-day-{n}")
    log(api_key[0], at(2002, 3, 5), "next-day")
    ids = dict(UsageRecord.objects.values_list("request_id", "pk"))
    yield ids
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS apikeys_usagerecord_p20020304")


def rows_of(table: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT request_id FROM {table} ORDER BY request_id")  # noqa: S608
        return [row[0] for row in cursor.fetchall()]


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_days_calls_too_many_to_move_in_one_statement_are_moved_in_batches(
    a_day_in_the_default, monkeypatch
):
    """After downtime longer than DAYS_AHEAD, today's calls sit in the default partition,
    and making today's partition moved them all in one statement (and its ATTACH built the
    day's indexes over them): past DB_STATEMENT_TIMEOUT, the job failed at every run."""
    monkeypatch.setattr(retention, "POSTGRESQL_BATCH", 2)
    with connection.cursor() as cursor:
        cursor.execute(_TWO_ROWS_A_TRANSACTION)
    try:
        made = usage_partitions_ensure(start_day=date(2002, 3, 4), end_day=date(2002, 3, 4))
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER rv_test_deleting_slowly ON apikeys_usagerecord_default")
            cursor.execute("DROP FUNCTION rv_test_deleting_slowly()")

    assert made == ["apikeys_usagerecord_p20020304"]
    assert rows_of("apikeys_usagerecord_p20020304") == [f"that-day-{n}" for n in range(5)]
    assert dict(UsageRecord.objects.values_list("request_id", "pk")) == a_day_in_the_default
    assert partition_of("next-day") == DEFAULT_PARTITION
    # Built beside the log with its indexes, each adopted by the log's own at the attach,
    # and no constraint left over from the move.
    assert index_parents("apikeys_usagerecord_p20020304") == index_parents(DEFAULT_PARTITION)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'c'",
            ["apikeys_usagerecord_p20020304"],
        )
        assert not [name for (name,) in cursor.fetchall() if name.endswith("_range")]


def index_parents(partition: str) -> list[str]:
    """The log's indexes that the partition's indexes belong to."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT parent.relname FROM pg_index i JOIN pg_inherits h ON h.inhrelid = i.indexrelid "
            "JOIN pg_class parent ON parent.oid = h.inhparent "
            "WHERE i.indrelid = %s::regclass ORDER BY 1",
            [partition],
        )
        return [row[0] for row in cursor.fetchall()]


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_partition_interrupted_while_its_calls_move_is_finished_by_the_next_run(
    a_day_in_the_default, monkeypatch
):
    """Killed between two batches, the calls moved so far wait in the day's table, not yet
    attached; none is lost or written twice, and the next run moves the rest and attaches
    it."""
    monkeypatch.setattr(retention, "POSTGRESQL_BATCH", 2)
    move = retention._partition_move_batch
    calls = []

    def killed_after_one_batch(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return move(*args, **kwargs)

    monkeypatch.setattr(retention, "_partition_move_batch", killed_after_one_batch)
    with pytest.raises(KeyboardInterrupt):
        usage_partitions_ensure(start_day=date(2002, 3, 4), end_day=date(2002, 3, 4))
    moved = rows_of("apikeys_usagerecord_p20020304")
    assert len(moved) == 2
    assert sorted(moved + rows_of("apikeys_usagerecord")) == sorted(a_day_in_the_default)
    monkeypatch.setattr(retention, "_partition_move_batch", move)

    made = usage_partitions_ensure(start_day=date(2002, 3, 4), end_day=date(2002, 3, 4))
    assert made == ["apikeys_usagerecord_p20020304"]
    assert partition_of("that-day-0") == "apikeys_usagerecord_p20020304"
    assert dict(UsageRecord.objects.values_list("request_id", "pk")) == a_day_in_the_default
    assert usage_partitions_ensure(start_day=date(2002, 3, 4), end_day=date(2002, 3, 4)) == []


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_call_logged_again_while_its_day_moves_is_kept_once_and_the_day_attached(
    a_day_in_the_default, api_key, monkeypatch
):
    """A call written twice (its stream entry delivered again after downtime: the very time
    a day's calls sit in the default partition) whose first copy has already moved into
    the day's table, not yet attached, is not found by the log's ON CONFLICT: its second
    copy lands in the default partition. Moving it then broke the day's unique index
    (request_id, created_at), and the job failed at that day at every run, the days after
    it never made."""
    monkeypatch.setattr(retention, "POSTGRESQL_BATCH", 2)
    move = retention._partition_move_batch
    batches = []

    def logged_again_after_the_first_batch(*args, **kwargs):
        moved = move(*args, **kwargs)
        batches.append(moved)
        if len(batches) == 1:
            log(api_key[0], at(2002, 3, 4, 0), "that-day-0")  # moved in the first batch
        return moved

    monkeypatch.setattr(retention, "_partition_move_batch", logged_again_after_the_first_batch)
    made = usage_partitions_ensure(start_day=date(2002, 3, 4), end_day=date(2002, 3, 4))
    assert made == ["apikeys_usagerecord_p20020304"]
    assert rows_of("apikeys_usagerecord_p20020304") == [f"that-day-{n}" for n in range(5)]
    assert rows_of(DEFAULT_PARTITION) == ["next-day"]


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_detection_waits_while_a_days_calls_are_out_of_sight_and_reads_them_after(
    a_day_in_the_default, api_key, monkeypatch
):
    """Between the batches that move a day's calls out of the default partition and the
    attach, those calls are in no table the log's reads see. Detection, catching up at the
    same time after the same downtime, read the calls still in sight, moved its cursor past
    them, and the moved calls came back below it at the attach, never checked (found by a
    review of the batched move). It now reads nothing while a day's table stands beside
    the log, and reads every call once it is attached."""
    from alerts.detection import detect
    from alerts.models import DetectionCursor

    attach = retention._partition_attach
    read_meanwhile = []

    def detection_runs_before_the_attach(*args, **kwargs):
        log(api_key[0], timezone.now(), "meanwhile")
        read_meanwhile.append(detect().rows)
        return attach(*args, **kwargs)

    monkeypatch.setattr(retention, "_partition_attach", detection_runs_before_the_attach)
    made = usage_partitions_ensure(start_day=date(2002, 3, 4), end_day=date(2002, 3, 4))
    assert made == ["apikeys_usagerecord_p20020304"]
    assert read_meanwhile == [0]
    assert detect().rows == 7  # the day's five, the next day's and the call made meanwhile
    assert DetectionCursor.objects.get().last_id == UsageRecord.objects.order_by("-id")[0].pk
