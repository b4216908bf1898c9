"""The scheduler claims each due job once, runs it, and goes on whatever a job does."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import DataError, OperationalError
from django.utils import timezone

from alerts.models import Flag
from apikeys.services import api_key_revoke
from scheduler import runner
from scheduler.jobs import Job, jobs
from scheduler.models import ScheduledJob
from scheduler.runner import Scheduler, claim, run_job

JOB = Job("demo", ("check",), every=60, lease=600)


def test_a_due_job_is_claimed_by_one_scheduler_only(db):
    now = timezone.now()
    assert claim(JOB, now=now, holder="a")
    assert not claim(JOB, now=now, holder="b")
    assert ScheduledJob.objects.get(name="demo").lease_holder == "a"


def test_a_finished_job_waits_for_its_next_point_of_the_clock(db):
    now = timezone.now()
    assert claim(JOB, now=now, holder="a")
    assert run_job(JOB, holder="a", call=lambda *args: None)
    row = ScheduledJob.objects.get(name="demo")
    assert row.lease_until is None and row.last_succeeded and row.runs == 1
    assert row.next_run_at > now and row.next_run_at.second == 0
    assert not claim(JOB, now=now, holder="b")
    assert claim(JOB, now=row.next_run_at, holder="b")


def test_a_lease_left_by_a_dead_scheduler_is_taken_over_when_it_ends(db):
    now = timezone.now()
    assert claim(JOB, now=now, holder="dead")
    assert not claim(JOB, now=now + timedelta(seconds=599), holder="b")
    assert claim(JOB, now=now + timedelta(seconds=600), holder="b")


def test_a_failing_job_is_recorded_and_stops_nothing(db):
    def broken(*args: object) -> None:
        raise SystemExit("boom")

    now = timezone.now()
    assert claim(JOB, now=now, holder="a")
    assert not run_job(JOB, holder="a", call=broken)
    row = ScheduledJob.objects.get(name="demo")
    assert row.last_succeeded is False and "boom" in row.last_error
    assert row.lease_until is None  # free for its next run


def test_a_failure_that_quotes_a_token_is_recorded_without_it(db, caplog):
    """PostgreSQL quotes the value it refused ('invalid input syntax for type inet:
    "reminix_sk_…"'), and a client's text may hold a token: the log line was cut by the
    log's filter, the job's row kept the token whole for whoever reads it."""
    token = "reminix_sk_" + "A1b2C3d4" * 4 + "Zz"

    def refused(*args: object) -> None:
        raise DataError(f'invalid input syntax for type inet: "{token}" whsec_{"Q" * 30}')

    assert claim(JOB, now=timezone.now(), holder="a")
    assert not run_job(JOB, holder="a", call=refused)
    row = ScheduledJob.objects.get(name="demo")
    assert "reminix_sk_[redacted]" in row.last_error
    assert token[11:] not in row.last_error and "Q" * 30 not in row.last_error


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_at_once_run_each_job_once():
    """Eight schedulers race for the same due jobs in threads: each job is claimed once."""
    lock = threading.Lock()
    job_list = [Job(f"job{n}", ("check",), every=3600) for n in range(3)]
    now = timezone.now()
    barrier = threading.Barrier(8)
    won: list[str] = []

    def race(holder: str) -> None:
        from django.db import DatabaseError, connection

        barrier.wait()
        try:
            for job in job_list:
                while True:
                    try:
                        claimed = claim(job, now=now, holder=holder)
                        break
                    except DatabaseError:
                        # SQLite's in-memory test database refuses a second writer
                        # outright; the scheduler's loop tries again at its next tick.
                        time.sleep(0.01)
                if claimed:
                    with lock:
                        won.append(job.name)
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(f"s{n}",)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == ["job0", "job1", "job2"]


def test_clock_points_are_fixed_whatever_the_moment():
    daily = Job("d", ("check",), every=86400, offset=300)
    moment = datetime(2026, 12, 4, 13, 37, 12, tzinfo=UTC)
    assert daily.next_after(moment) == datetime(2026, 12, 5, 0, 5, tzinfo=UTC)
    assert JOB.next_after(moment) == datetime(2026, 12, 4, 13, 38, tzinfo=UTC)
    assert JOB.next_after(datetime(2026, 12, 4, 13, 38, tzinfo=UTC)) == datetime(
        2026, 12, 4, 13, 39, tzinfo=UTC
    )
    assert Job("y", ("check",), every=60).next_after(datetime(9999, 12, 31, 23, 58, tzinfo=UTC))


def test_every_job_names_a_command_that_exists():
    from django.core.management import get_commands

    commands = get_commands()
    names = [job.name for job in jobs()]
    assert "detect_suspicious_activity" in names and len(set(names)) == len(names)
    for job in jobs():
        assert job.command[0] in commands


@pytest.mark.django_db(transaction=True)
def test_the_scheduler_raises_an_alert_for_a_revoked_key_still_tried(
    client, user, project, make_key
):
    key, token = make_key(project)
    api_key_revoke(api_key=key, by=user)
    answer = client.post(
        "/v1/agents/my-agent/invoke",
        {"prompt": "hi"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 401
    scheduler = Scheduler([job for job in jobs() if job.name == "detect_suspicious_activity"])
    assert scheduler.run_due() == ["detect_suspicious_activity"]
    scheduler.wait(30)
    assert Flag.objects.filter(api_key=key).exists()
    assert ScheduledJob.objects.get(name="detect_suspicious_activity").last_succeeded


@pytest.mark.django_db(transaction=True)
def test_run_scheduler_once_runs_what_is_due(capsys):
    call_command("run_scheduler", "--once")
    out = capsys.readouterr().out
    assert "detect_suspicious_activity" in out
    assert ScheduledJob.objects.filter(last_succeeded=True).count() == len(jobs())


@pytest.mark.django_db(transaction=True)
def test_run_scheduler_once_fails_for_cron_when_a_job_failed(monkeypatch):
    # It exited 0 whatever happened: cron, which mails a failing command's output, heard
    # of nothing.
    broken = Job("broken", ("no_such_command",), every=60, lease=600)
    monkeypatch.setattr(runner, "jobs", lambda: [JOB, broken])
    with pytest.raises(CommandError, match="Failed: broken"):
        call_command("run_scheduler", "--once")
    assert ScheduledJob.objects.get(name="demo").last_succeeded is True


def test_run_scheduler_once_fails_for_cron_when_the_database_is_away(db, monkeypatch):
    def away(*args: object, **kwargs: object) -> bool:
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(runner, "claim", away)
    with pytest.raises(CommandError, match="database did not answer"):
        call_command("run_scheduler", "--once")


def test_the_loop_goes_on_after_an_error_that_is_not_the_databases(db, monkeypatch):
    scheduler = Scheduler([JOB])
    calls = []

    def broken(now=None):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("can't start new thread")
        scheduler.stop()
        return []

    monkeypatch.setattr(scheduler, "run_due", broken)
    scheduler.loop(tick=0.01)
    assert len(calls) == 2


def test_a_running_job_keeps_its_lease_and_holders_are_unique(db):
    from scheduler.runner import holder_name, renew

    now = timezone.now()
    assert claim(JOB, now=now, holder="a")
    assert renew(JOB, holder="a") and not renew(JOB, holder="b")
    row = ScheduledJob.objects.get(name="demo")
    assert row.lease_until > now
    assert holder_name() != holder_name()


def test_a_schedule_set_while_the_clock_ran_ahead_does_not_hold_the_job_back(db):
    """A host whose clock ran a day ahead (no NTP yet at boot) finished the job and set its
    next run a day on; once the clock was put right, the job waited that whole day (a
    year, for a clock a year ahead): no detection, no reminders, no pruning meanwhile."""
    now = timezone.now()
    ahead = now + timedelta(days=1)
    assert claim(JOB, now=ahead, holder="a")
    assert run_job(JOB, holder="a", call=lambda *args: None)
    ScheduledJob.objects.filter(name="demo").update(next_run_at=JOB.next_after(ahead))

    assert claim(JOB, now=now, holder="b")


def test_a_lease_taken_while_the_clock_ran_ahead_ends_once_it_is_put_right(db):
    """The same for a scheduler that died holding a lease its clock set a day ahead."""
    now = timezone.now()
    assert claim(JOB, now=now + timedelta(days=1), holder="dead")
    ScheduledJob.objects.filter(name="demo").update(next_run_at=now)

    assert claim(JOB, now=now, holder="b")


def test_a_clock_a_little_ahead_on_another_host_takes_no_live_lease(db):
    """Hosts' clocks differ by seconds: a lease is not taken from a live run for that."""
    now = timezone.now()
    assert claim(JOB, now=now + timedelta(seconds=30), holder="a")
    ScheduledJob.objects.filter(name="demo").update(next_run_at=now)

    assert not claim(JOB, now=now, holder="b")


def test_a_host_a_little_behind_does_not_run_again_a_job_another_just_finished(db):
    """Hosts' clocks differ by seconds: a host two seconds behind, looking just after
    another finished the run of 12:00:00 and set the next for 12:01:00, reads that next
    run as more than one interval ahead of its 11:59:59. It is not a schedule set by a
    clock that ran ahead: taken as passed, the job ran twice each interval."""
    slot = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    ScheduledJob.objects.create(name="demo", next_run_at=slot)
    assert claim(JOB, now=slot + timedelta(seconds=0.2), holder="a")
    ScheduledJob.objects.filter(name="demo").update(
        lease_holder="", lease_until=None, next_run_at=JOB.next_after(slot + timedelta(seconds=1))
    )

    assert not claim(JOB, now=slot - timedelta(seconds=1), holder="b")


# Committed for real: the retry closes a broken connection, which inside a test's
# transaction would be the test's own.
@pytest.mark.django_db(transaction=True)
def test_a_run_that_ends_while_the_database_is_away_is_recorded_once_it_is_back(monkeypatch):
    """The end of a run was tried three times over six seconds, then left to the lease: a
    database away a little longer (a failover) kept detection and webhook delivery from
    running for their whole lease (10 minutes), prune_usage for six hours."""
    from django.db import OperationalError

    from scheduler import runner

    real_finish, tries = runner.finish, []

    def finish_once_the_database_is_back(job: Job, *, holder: str, error: str = "") -> None:
        tries.append(1)
        if len(tries) <= 10:
            raise OperationalError("connection refused")
        real_finish(job, holder=holder, error=error)

    def sleep(seconds: float) -> None:
        assert len(tries) < 50, "the end was never recorded"

    monkeypatch.setattr(runner, "finish", finish_once_the_database_is_back)
    monkeypatch.setattr(runner.time, "sleep", sleep)
    now = timezone.now()
    assert claim(JOB, now=now, holder="a")

    assert run_job(JOB, holder="a", call=lambda *args: None)

    row = ScheduledJob.objects.get(name="demo")
    assert row.lease_until is None and row.last_succeeded and row.next_run_at > now


def test_a_scheduler_told_to_stop_does_not_wait_for_the_database_to_record_an_end(db, monkeypatch):
    """`run_scheduler` stops on SIGTERM once its running jobs end. Trying to record an end
    for up to the lease, a scheduler stopped while the database was away (a deploy during
    a failover) did not exit for ten minutes, or six hours after prune_usage: `make
    serve`'s stop waited for it. Once it is stopping, the end is left to the lease, as it
    was before."""
    from django.db import OperationalError

    from scheduler import runner

    tries = []

    def finish_never(job: Job, *, holder: str, error: str = "") -> None:
        tries.append(1)
        raise OperationalError("connection refused")

    def sleep(seconds: float) -> None:
        raise AssertionError("a stopping scheduler waited for the database")

    monkeypatch.setattr(runner, "finish", finish_never)
    monkeypatch.setattr(runner.time, "sleep", sleep)
    stopping = threading.Event()
    stopping.set()

    assert run_job(JOB, holder="a", call=lambda *args: None, stopping=stopping)
    assert len(tries) == 1


@pytest.mark.django_db(transaction=True)
def test_a_long_running_scheduler_keeps_one_name_per_failing_job_not_one_per_failure():
    # `failed` (for --once's exit status) grew by one entry at every failure, for the
    # life of the process: a minutely job failing for a month was 43,000 entries.
    broken = Job("broken", ("no_such_command",), every=60, lease=600)
    scheduler = Scheduler([broken])
    start = timezone.now()
    for minute in range(3):
        assert scheduler.run_due(now=start + timedelta(minutes=2 * minute)) == ["broken"]
        scheduler.wait()
    assert sorted(scheduler.failed) == ["broken"]


@pytest.mark.django_db(transaction=True)
def test_a_stop_cuts_short_a_job_still_running_and_its_lease_ends_a_minute_later(monkeypatch):
    """`run_scheduler` waited on SIGTERM for every running job to end: a detection run
    catching up, a webhook run (up to 45 s of sends), a prune of hours. A deploy's stop
    timeout (Docker's 10 s) then SIGKILLed it with the lease held: detection and webhooks
    stopped for ten minutes after the deploy, prune_usage for six hours. A job still
    running a few seconds into the stop is cut short (its transaction goes with the
    process) and its lease ends a minute later, for another scheduler to take."""
    started, released = threading.Event(), threading.Event()

    def runs_on(*args: object) -> None:
        started.set()
        released.wait(60)

    real_run_job = runner.run_job
    monkeypatch.setattr(runner, "run_job", lambda job, **kw: real_run_job(job, call=runs_on, **kw))
    monkeypatch.setattr(runner, "STOP_GRACE_SECONDS", 0.5)
    long = Job("long", ("check",), every=86400, lease=6 * 3600)
    scheduler = Scheduler([long])
    loop = threading.Thread(target=scheduler.loop, kwargs={"tick": 0.05})
    loop.start()
    try:
        assert started.wait(10)
        stopped_at = timezone.now()
        scheduler.stop()
        loop.join(10)
        assert not loop.is_alive(), "the stop waited for the job to end"
        lease_until = ScheduledJob.objects.get(name="long").lease_until
        assert lease_until <= stopped_at + timedelta(seconds=runner.CUT_LEASE_SECONDS + 5)
        assert claim(long, now=lease_until, holder="another")
    finally:
        released.set()
        scheduler.wait(10)
        loop.join(10)


@pytest.mark.django_db(transaction=True)
def test_a_stop_still_lets_a_job_that_ends_within_the_grace_end_and_be_recorded(monkeypatch):
    started = threading.Event()

    def short(*args: object) -> None:
        started.set()
        time.sleep(0.3)

    real_run_job = runner.run_job
    monkeypatch.setattr(runner, "run_job", lambda job, **kw: real_run_job(job, call=short, **kw))
    monkeypatch.setattr(runner, "STOP_GRACE_SECONDS", 10)
    scheduler = Scheduler([JOB])
    loop = threading.Thread(target=scheduler.loop, kwargs={"tick": 0.05})
    loop.start()
    assert started.wait(10)
    scheduler.stop()
    loop.join(15)
    row = ScheduledJob.objects.get(name="demo")
    assert not loop.is_alive() and row.lease_until is None and row.last_succeeded


def test_a_database_away_for_minutes_is_a_warning_a_minute_not_one_per_look(
    db, monkeypatch, caplog
):
    """The scheduler looks for due jobs every second and warned at every look: a
    ten-minute failover was 600 lines per instance, burying the rest of the log."""
    from types import SimpleNamespace

    away = True

    def claim_or_fail(job: Job, *, now: datetime, holder: str, late: bool = True) -> bool:
        if away:
            raise OperationalError("could not connect to server")
        return False

    clock = SimpleNamespace(seconds=1000.0)
    monkeypatch.setattr(runner, "claim", claim_or_fail)
    monkeypatch.setattr(runner, "time", SimpleNamespace(monotonic=lambda: clock.seconds))
    scheduler = Scheduler([JOB])
    with caplog.at_level("INFO", logger="scheduler.runner"):
        for _ in range(600):  # ten minutes of looks, one a second
            scheduler.run_due()
            clock.seconds += 1
        away = False
        scheduler.run_due()
        scheduler.run_due()
    said = [r.getMessage() for r in caplog.records if r.name == "scheduler.runner"]
    assert said[0] == "Scheduler: the database did not answer; trying again"
    assert said[1] == "Scheduler: the database has not answered for 60 s; trying again"
    assert said[-1] == "Scheduler: the database answers again, after 600 s"
    assert len(said) == 11


def _stopped_while_running(monkeypatch) -> tuple[datetime, datetime]:
    """A scheduler stopped while its one job (lease 6 h) runs on: when the stop came, and
    the job's lease as the stop left it."""
    started, released = threading.Event(), threading.Event()

    def runs_on(*args: object) -> None:
        started.set()
        released.wait(60)

    real_run_job = runner.run_job
    monkeypatch.setattr(runner, "run_job", lambda job, **kw: real_run_job(job, call=runs_on, **kw))
    monkeypatch.setattr(runner, "STOP_GRACE_SECONDS", 0.5)
    scheduler = Scheduler([Job("long", ("check",), every=86400, lease=6 * 3600)])
    loop = threading.Thread(target=scheduler.loop, kwargs={"tick": 0.05})
    loop.start()
    try:
        assert started.wait(10)
        stopped_at = timezone.now()
        scheduler.stop()
        loop.join(10)
        assert not loop.is_alive(), "the stop waited for the job to end"
        return stopped_at, ScheduledJob.objects.get(name="long").lease_until
    finally:
        released.set()
        scheduler.wait(10)
        loop.join(10)


@pytest.mark.django_db(transaction=True)
def test_a_cut_jobs_lease_outlasts_a_statement_timeout_longer_than_a_minute(monkeypatch, settings):
    """The process goes with the stop, but a statement it sent runs on at the server
    (PostgreSQL does not notice the client has gone) until it ends or meets the statement
    timeout. With DB_STATEMENT_TIMEOUT at 5 minutes, a lease cut to a minute let another
    scheduler start the job while the cut run's DELETE still ran: two prunes at once."""
    settings.DB_STATEMENT_TIMEOUT = 300
    stopped_at, lease_until = _stopped_while_running(monkeypatch)
    assert lease_until >= stopped_at + timedelta(seconds=300 + runner.CUT_LEASE_MARGIN_SECONDS)
    assert lease_until <= stopped_at + timedelta(seconds=300 + runner.CUT_LEASE_MARGIN_SECONDS + 5)


@pytest.mark.django_db(transaction=True)
def test_a_cut_job_keeps_its_lease_when_statements_have_no_time_limit(monkeypatch, settings):
    """DB_STATEMENT_TIMEOUT=0 turns the timeout off: a cut run's statement may go on for
    as long as the job's own lease allows, which it keeps, as after a crash."""
    settings.DB_STATEMENT_TIMEOUT = 0
    stopped_at, lease_until = _stopped_while_running(monkeypatch)
    assert lease_until >= stopped_at + timedelta(hours=6) - timedelta(seconds=5)


def test_a_cut_job_with_little_lease_left_is_held_while_its_statement_may_run(db, settings):
    """A ten-minute job (detection, webhook deliveries) renews its lease every third of
    it, so a stop may find as little as 400 s of it left; with DB_STATEMENT_TIMEOUT at
    10 minutes the cut run's statement may run on past that, and the cut lease only ever
    shortened a lease: another scheduler took the job while that statement still ran."""
    settings.DB_STATEMENT_TIMEOUT = 600
    now = timezone.now()
    assert claim(JOB, now=now - timedelta(seconds=200), holder="a")  # 400 s of it left
    runner.cut_short(JOB, holder="a")
    assert not claim(JOB, now=now + timedelta(seconds=600), holder="b")
    margin = runner.CUT_LEASE_MARGIN_SECONDS
    assert claim(JOB, now=now + timedelta(seconds=600 + margin + 5), holder="b")


def test_a_cut_lease_is_never_one_another_scheduler_takes_for_a_clocks_mistake(db, settings):
    """A lease more than twice its length ahead is taken as a clock's mistake, at once
    (claim): a statement timeout longer than that holds the job for as long as a lease
    can, not for nothing."""
    settings.DB_STATEMENT_TIMEOUT = 3600
    now = timezone.now()
    assert claim(JOB, now=now, holder="a")
    runner.cut_short(JOB, holder="a")
    assert not claim(JOB, now=now + timedelta(seconds=5), holder="b")
    assert not claim(JOB, now=now + timedelta(seconds=JOB.lease), holder="b")
