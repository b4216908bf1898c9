"""A run of the partitions job cut short between building a day's table and attaching it
(killed, a deploy, the statement timeout): the day's moved calls are out of the log's
reads and detection reads nothing until the table is attached (usage_rows_out_of_sight).
That must last minutes, not until the next daily run, and say so to an operator."""

from __future__ import annotations

import logging
import threading
from datetime import date, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from alerts.detection import detect
from alerts.models import DetectionCursor
from scheduler.jobs import DAY, jobs
from scheduler.models import ScheduledJob
from scheduler.runner import Scheduler
from tests.usage.test_retention import (  # noqa: F401 (a fixture)
    a_day_in_the_default,
    rows_of,
)
from usage import retention
from usage.models import UsageRecord
from usage.retention import (
    DEFAULT_PARTITION,
    partition_name,
    usage_partitions,
    usage_partitions_ensure,
    usage_partitions_ensure_ahead,
    usage_rows_out_of_sight,
)

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="partitions exist on PostgreSQL only"
    ),
    pytest.mark.django_db(transaction=True),
]

THAT_DAY = date(2002, 3, 4)
ITS_TABLE = "apikeys_usagerecord_p20020304"


def cut_short_before_the_attach(monkeypatch: pytest.MonkeyPatch) -> None:
    """The day's calls moved into its table, then the run killed before the attach."""
    attach = retention._partition_attach

    def killed(*args: object, **kwargs: object) -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(retention, "_partition_attach", killed)
    with pytest.raises(KeyboardInterrupt):
        usage_partitions_ensure(start_day=THAT_DAY, end_day=THAT_DAY)
    monkeypatch.setattr(retention, "_partition_attach", attach)
    assert rows_of(ITS_TABLE) == [f"that-day-{n}" for n in range(5)]
    assert THAT_DAY not in usage_partitions()


def every_job_last_ran_now() -> None:
    """Each job's row as its last run left it: the daily ones due tomorrow."""
    now = timezone.now()
    for job in jobs():
        ScheduledJob.objects.create(name=job.name, next_run_at=job.next_after(now))


def test_a_partitions_run_cut_short_leaves_detection_waiting_minutes_not_until_the_next_day(
    a_day_in_the_default,  # noqa: F811
    monkeypatch,
):
    """Cut short after building the day's table, the daily job left detection paused for
    every tenant (and the day's calls off the call log's pages) until its next run, the
    next day; and since that run makes days from its own today on, a past day's table (one
    moved after downtime) was never attached at all. The scheduler's next minutes now
    finish the move and attach it, and detection reads every call."""
    cut_short_before_the_attach(monkeypatch)
    assert detect().rows == 0
    every_job_last_ran_now()
    scheduler = Scheduler([job for job in jobs() if job.every < DAY])
    now = timezone.now()
    for minute in range(1, 6):
        scheduler.run_due(now + timedelta(minutes=minute))
        scheduler.wait(30)
    assert scheduler.failed == set()

    assert usage_partitions()[THAT_DAY] == ITS_TABLE
    assert not usage_rows_out_of_sight()
    assert rows_of(ITS_TABLE) == [f"that-day-{n}" for n in range(5)]
    assert rows_of(DEFAULT_PARTITION) == ["next-day"]
    detect()
    assert DetectionCursor.objects.get().last_id == max(a_day_in_the_default.values())


def test_the_daily_job_attaches_a_table_left_unattached_whatever_its_day(
    a_day_in_the_default,  # noqa: F811
    monkeypatch,
):
    """The daily job makes today's and the next 14 days' partitions; a table of an earlier
    day that a run left unattached is finished first, not left for good."""
    cut_short_before_the_attach(monkeypatch)
    made = usage_partitions_ensure_ahead()
    assert ITS_TABLE in made
    assert usage_partitions()[THAT_DAY] == ITS_TABLE
    assert dict(UsageRecord.objects.values_list("request_id", "pk")) == a_day_in_the_default


def test_a_table_whose_calls_are_moving_is_left_to_the_run_moving_them(
    a_day_in_the_default,  # noqa: F811
    monkeypatch,
):
    """The minutely finisher, or a second scheduler's prune_usage, meeting a day's table
    while the daily job is still moving calls into it leaves it alone: it is not stranded,
    and two runs moving one day's calls would only slow each other."""
    monkeypatch.setattr(retention, "POSTGRESQL_BATCH", 2)
    move = retention._partition_move_batch
    finisher_said = []

    def another_run_meanwhile(*args: object, **kwargs: object) -> int | None:
        if not finisher_said:
            out = StringIO()

            def finisher() -> None:  # a thread: a connection of its own, as another process's
                try:
                    call_command("finish_usage_partitions", stdout=out)
                except Exception as error:
                    out.write(repr(error))
                finally:
                    connection.close()

            other = threading.Thread(target=finisher)
            other.start()
            other.join(30)
            finisher_said.append(out.getvalue())
        return move(*args, **kwargs)

    monkeypatch.setattr(retention, "_partition_move_batch", another_run_meanwhile)
    made = usage_partitions_ensure(start_day=THAT_DAY, end_day=THAT_DAY)
    assert made == [ITS_TABLE]
    assert finisher_said == [""]
    assert rows_of(ITS_TABLE) == [f"that-day-{n}" for n in range(5)]


def test_a_stranded_table_is_told_to_the_operator_until_it_is_attached(
    a_day_in_the_default,  # noqa: F811
    monkeypatch,
    caplog,
):
    """Detection paused for everyone says so at WARNING, naming the day's table and why,
    not the INFO line of a move under way; the finisher says what it found and did."""
    cut_short_before_the_attach(monkeypatch)
    with caplog.at_level(logging.INFO):
        detect()
    paused = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(paused) == 1
    assert ITS_TABLE in paused[0].getMessage()
    assert "cut short" in paused[0].getMessage()
    assert "detection" in paused[0].getMessage().lower()

    caplog.clear()
    out = StringIO()
    with caplog.at_level(logging.INFO):
        call_command("finish_usage_partitions", stdout=out)
    assert out.getvalue() == f"Attached partition {ITS_TABLE}.\n"
    found = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(found) == 1
    assert ITS_TABLE in found[0].getMessage()

    caplog.clear()
    with caplog.at_level(logging.INFO):
        detect()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# Tables named as a day's partition that no run of ours made: a day no calendar has, the
# last day there is (whose range ends past any date), and one of another shape.
NOT_OURS = {
    "apikeys_usagerecord_p20261399": "(LIKE apikeys_usagerecord INCLUDING ALL)",
    "apikeys_usagerecord_p99991231": "(LIKE apikeys_usagerecord INCLUDING ALL)",
    "apikeys_usagerecord_p20020305": "(id bigint)",
}


@pytest.fixture
def tables_not_ours():
    with connection.cursor() as cursor:
        for name, shape in NOT_OURS.items():
            cursor.execute(f"CREATE TABLE {name} {shape}")
    yield
    with connection.cursor() as cursor:
        for name in NOT_OURS:
            cursor.execute(f"DROP TABLE IF EXISTS {name}")


def test_a_table_named_as_a_day_that_no_run_made_pauses_nothing_and_stops_no_job(
    a_day_in_the_default,  # noqa: F811
    tables_not_ours,
    monkeypatch,
):
    """Each of NOT_OURS (made by hand, restored from elsewhere) paused detection for every
    tenant for good: the finisher passed over p20261399 (no such day) while detection
    counted it; p99991231 raised OverflowError and a table of another shape
    ProgrammingError, in the finisher every minute and in ensure_usage_partitions (which
    finishes first) every day, so no day's partition was made again. A table of ours is
    one with the CHECK of its range that a run adds as it makes it: those alone are
    finished and pause detection, and the run cut short beside them is finished."""
    cut_short_before_the_attach(monkeypatch)
    out = StringIO()
    call_command("finish_usage_partitions", stdout=out)
    assert out.getvalue() == f"Attached partition {ITS_TABLE}.\n"
    assert not usage_rows_out_of_sight()
    today = timezone.now().date()
    assert partition_name(today + timedelta(days=3)) in (
        set(usage_partitions_ensure_ahead()) | set(usage_partitions().values())
    )
    detect()
    assert DetectionCursor.objects.get().last_id == max(a_day_in_the_default.values())


def test_a_day_that_cannot_be_made_stops_no_other_day(caplog):
    """A table of another shape standing at a coming day's name (made by hand, restored
    from elsewhere) failed ensure_usage_partitions at that day, every day, and no later day
    was made for anyone: their calls went to the default partition. That day is said at
    ERROR, naming its table, and the others are made. (Days past the 14 the migration
    made, dropped again after.)"""
    today = timezone.now().date()
    later = [today + timedelta(days=n) for n in range(15, 21)]
    in_the_way = partition_name(later[2])
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {in_the_way} (id bigint)")
    try:
        with caplog.at_level(logging.ERROR):
            call_command("ensure_usage_partitions", "--days", "20", stdout=StringIO())
        made = usage_partitions()
        assert [day in made for day in later] == [True, True, False, True, True, True]
        assert [r.levelno for r in caplog.records] == [logging.ERROR]
        assert in_the_way in caplog.records[0].getMessage()
    finally:
        with connection.cursor() as cursor:
            for day in later:
                cursor.execute(f"DROP TABLE IF EXISTS {partition_name(day)}")
