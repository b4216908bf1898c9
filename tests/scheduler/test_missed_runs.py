"""A scheduler back after downtime runs each job that missed its slot once, soon after it
starts, not once per missed slot; the daily ones one at a time, the partitions job first."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from scheduler import runner
from scheduler.jobs import DAY, Job, jobs
from scheduler.models import ScheduledJob
from scheduler.runner import Scheduler

DAILY = [job.name for job in jobs() if job.every == DAY]


def left_by_a_run_days_ago(days: int) -> None:
    """Each job's row as its last run before the downtime left it: the next slot set, then
    never reached (the machine, or the scheduler, was down)."""
    then = timezone.now() - timedelta(days=days)
    for job in jobs():
        ScheduledJob.objects.create(
            name=job.name,
            next_run_at=job.next_after(then),
            last_started_at=then,
            last_finished_at=then,
            last_succeeded=True,
            runs=1,
        )


@pytest.fixture
def clock_at_midday(monkeypatch: pytest.MonkeyPatch) -> None:
    """The clock moved to 12:00 UTC of today, and running on from there: the daily jobs'
    slots are from 00:05 to 01:00, and a test that looks a few seconds or minutes ahead of
    the real time would see a job's next slot come round during it if it ran just before
    one (CI's run at 00:29:42 saw prune_client_tokens, due at 00:30, start again)."""
    real_now = timezone.now
    started = real_now()
    shift = started.replace(hour=12, minute=0, second=0, microsecond=0) - started
    monkeypatch.setattr(timezone, "now", lambda: real_now() + shift)


class HeldRuns:
    """Stands in for the jobs' commands: a daily job's run goes on until let go, as a long
    prune would, so the test sees which run at the same time; the others end at once."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started: list[str] = []
        self.gates: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        self.ended = False
        real_run_job = runner.run_job

        def run_job(job, **kw):
            if job.name not in DAILY:
                return real_run_job(job, call=lambda *args: None, **kw)
            with self.lock:
                self.started.append(job.name)
                gate = self.gates.setdefault(job.name, threading.Event())
                if self.ended:
                    gate.set()
            return real_run_job(job, call=lambda *args: gate.wait(30), **kw)

        monkeypatch.setattr(runner, "run_job", run_job)

    def end_all(self) -> None:
        with self.lock:
            self.ended = True
            for gate in self.gates.values():
                gate.set()

    def let_go(self, name: str, scheduler: Scheduler) -> None:
        with self.lock:  # its thread may not have reached its command yet
            self.gates.setdefault(name, threading.Event()).set()
        scheduler.running[name].join(10)


@pytest.mark.django_db(transaction=True)
def test_after_downtime_the_daily_jobs_run_once_each_one_at_a_time_partitions_first(
    monkeypatch, clock_at_midday
):
    """Down for 20 days (more than the 14 days of partitions made ahead): every daily job
    had missed its slot, and all of them started at the first look, together (prune_usage's
    catch-up beside four other prunes and the partitions job), where each is normally 5 to
    35 minutes from the next. Now the first look starts the partitions job (today's calls
    land in the default partition until it runs), and each other missed daily job starts
    once the one before it has ended, once each, not once per missed day."""
    left_by_a_run_days_ago(20)
    runs = HeldRuns(monkeypatch)
    scheduler = Scheduler()
    now = timezone.now()
    try:
        first = scheduler.run_due(now=now)
        assert [name for name in first if name in DAILY] == ["ensure_usage_partitions"]
        order = ["ensure_usage_partitions"]
        for look in range(1, 20):
            started = [
                n for n in scheduler.run_due(now=now + timedelta(seconds=look)) if n in DAILY
            ]
            assert len(started) <= 1, started
            if not started:
                runs.let_go(order[-1], scheduler)
                continue
            order += started
        assert order == ["ensure_usage_partitions"] + [n for n in DAILY if n != order[0]]
        runs.let_go(order[-1], scheduler)
        assert not [n for n in scheduler.run_due(now=now + timedelta(minutes=2)) if n in DAILY], (
            "a missed daily job ran again"
        )
    finally:
        runs.end_all()
        scheduler.wait(10)
    for name in DAILY:
        row = ScheduledJob.objects.get(name=name)
        assert row.runs == 2 and row.next_run_at > now, name


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_back_after_downtime_run_the_partitions_job_once(
    monkeypatch, clock_at_midday
):
    """Two instances start at the same moment: the partitions job runs in one of them (its
    lease), and each instance catches up one missed daily job at a time."""
    left_by_a_run_days_ago(20)
    runs = HeldRuns(monkeypatch)
    one, other = Scheduler(holder="one"), Scheduler(holder="other")
    now = timezone.now()
    try:
        first = [n for n in one.run_due(now=now) if n in DAILY]
        for name, thread in one.running.items():
            if name not in DAILY:  # SQLite: their ends write while the other one looks
                thread.join(10)
        second = [n for n in other.run_due(now=now) if n in DAILY]
        assert first == ["ensure_usage_partitions"] and second == ["prune_usage"]
        assert not [n for n in other.run_due(now=now + timedelta(seconds=1)) if n in DAILY]
    finally:
        runs.end_all()
        one.wait(10)
        other.wait(10)
    assert runs.started.count("ensure_usage_partitions") == 1


@pytest.mark.django_db(transaction=True)
def test_a_missed_daily_job_that_hangs_holds_the_others_back_only_for_its_lease(monkeypatch):
    """A catch-up that never ends (a statement with no timeout) would otherwise keep every
    other missed daily job waiting for good: none of them is ever on time again."""
    hangs = Job("hangs", ("check",), every=DAY, lease=1)
    after = Job("after", ("check",), every=DAY, lease=1)
    then = timezone.now() - timedelta(days=3)
    for job in (hangs, after):
        ScheduledJob.objects.create(name=job.name, next_run_at=job.next_after(then))
    gate = threading.Event()
    real_run_job = runner.run_job
    monkeypatch.setattr(
        runner, "run_job", lambda job, **kw: real_run_job(job, call=lambda *a: gate.wait(30), **kw)
    )
    scheduler = Scheduler([hangs, after])
    try:
        assert scheduler.run_due() == ["hangs"]
        assert scheduler.run_due() == []
        time.sleep(1.1)
        assert scheduler.run_due() == ["after"]
    finally:
        gate.set()
        scheduler.wait(10)


FAR = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_a_row_dated_in_the_year_9999_holds_no_daily_job_back(monkeypatch):
    """A bad row (a next run, a lease and a last run in 9999) is no schedule any clock
    could have set: the job runs at the first look, once, then at its time."""
    daily = Job("daily", ("check",), every=DAY, offset=300)
    ScheduledJob.objects.create(
        name="daily",
        next_run_at=FAR,
        lease_holder="gone",
        lease_until=FAR,
        last_started_at=FAR,
        last_finished_at=FAR,
    )
    scheduler = Scheduler([daily])
    assert scheduler.run_due() == ["daily"]
    scheduler.wait(10)
    row = ScheduledJob.objects.get(name="daily")
    assert row.last_succeeded and row.next_run_at <= timezone.now() + timedelta(days=1)
    assert scheduler.run_due() == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("back", [timedelta(hours=2), timedelta(days=3), timedelta(days=365)])
@pytest.mark.parametrize("real", ["00:06", "12:00", "23:59"])
def test_a_clock_put_back_holds_a_daily_job_until_its_slot_or_runs_it_at_once(back, real):
    """A VM restored from a snapshot reads a time before the rows' next runs: the job runs
    once its clock reaches that next run or, when no clock reading the restored time could
    have set that run (more than a day and a lease ahead of it), at once. The test once
    asked for the run a day and a lease after the restored time whatever the hour, which
    a slot up to a day after the real time need not be: it failed in CI's run that crossed
    midnight, the slot being 00:05. The real time is now set, at the hours that matter."""
    daily = Job("daily", ("check",), every=DAY, offset=300)
    hour, minute = map(int, real.split(":"))
    now = datetime(2026, 12, 7, hour, minute, tzinfo=UTC)
    slot = daily.next_after(now)
    ScheduledJob.objects.create(name="daily", next_run_at=slot)
    restored = now - back
    scheduler = Scheduler([daily], holder="restored")
    if slot - restored > timedelta(seconds=DAY) + runner.lease_of(daily):
        assert scheduler.run_due(now=restored) == ["daily"]
    else:
        assert scheduler.run_due(now=restored) == []
        assert scheduler.run_due(now=slot - timedelta(seconds=1)) == []
        assert scheduler.run_due(now=slot) == ["daily"]
    scheduler.wait(10)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "column", ["next_run_at", "lease_until", "last_started_at", "last_finished_at"]
)
def test_a_row_dated_past_what_python_reads_holds_no_job_back(column):
    """PostgreSQL keeps 'infinity' and years past 9999 in a timestamp, which Python cannot
    read: claim() read the whole row (get_or_create) at every look and failed, so that job
    and every job after it in jobs() never ran again, the log saying that the database did
    not answer. (On SQLite, where the row is text, the test passed already.)"""
    bad, after = Job("bad", ("check",), every=DAY), Job("after", ("check",), every=DAY)
    ScheduledJob.objects.create(name="bad", next_run_at=timezone.now() - timedelta(days=3))
    never = "infinity" if connection.vendor == "postgresql" else "10000-01-01 00:00:00"
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE scheduler_scheduledjob SET {column} = %s WHERE name = 'bad'", [never]
        )
    scheduler = Scheduler([bad, after])
    assert sorted(scheduler.run_due()) == ["after", "bad"]
    scheduler.wait(10)
    row = ScheduledJob.objects.get(name="bad")
    assert row.last_succeeded and row.next_run_at <= timezone.now() + timedelta(days=1)


@pytest.mark.django_db(transaction=True)
def test_run_scheduler_once_from_cron_catches_up_one_missed_daily_job_a_call(
    capsys, clock_at_midday
):
    """`run_scheduler --once` every minute from cron: each call a scheduler of its own,
    each runs the partitions job first, then one other missed daily job a call."""
    left_by_a_run_days_ago(20)
    call_command("run_scheduler", "--once")
    first = capsys.readouterr().out
    call_command("run_scheduler", "--once")
    second = capsys.readouterr().out
    assert [n for n in DAILY if n in first] == ["ensure_usage_partitions"]
    assert [n for n in DAILY if n in second] == ["prune_usage"]
