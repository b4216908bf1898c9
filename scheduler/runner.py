"""The scheduler's loop: claim each due job, run it, schedule its next run.

Claiming is one conditional UPDATE on the job's row (scheduler.models.ScheduledJob):
due, and no lease running. It either changes one row or none, on SQLite and PostgreSQL
alike, so any number of schedulers may run at once (two instances of `make serve`, a
restart that overlaps): each run of a job happens in exactly one of them. A job runs in a
thread of its own, so a long prune never holds up the minute's detection. A job that fails
is logged and recorded on its row (last_succeeded, last_error) and runs again at its next
time; it never stops the loop or the other jobs. A database that cannot be reached is
waited out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.db import (
    DatabaseError,
    IntegrityError,
    close_old_connections,
    connection,
    transaction,
)
from django.db.models import F, Q
from django.utils import timezone

from core.db_errors import database_away_or_busy
from core.outage_log import OutageLog
from core.redact import controls_escaped, redact_tokens
from scheduler.jobs import Job, jobs, lease_of
from scheduler.models import ScheduledJob

logger = logging.getLogger(__name__)

TICK_SECONDS = 1.0
# What a stop (SIGTERM from a deploy, Ctrl-C) waits for the jobs running then to end: well
# within an orchestrator's own wait before its SIGKILL (Docker's is 10 s), which would
# leave their leases held for their whole length.
STOP_GRACE_SECONDS = 5.0
# The lease left to a job the stop cut short: the process is gone within the second, but
# the statement it was running goes on at the server (PostgreSQL does not notice that its
# client has gone) until it ends or meets DB_STATEMENT_TIMEOUT; another scheduler takes
# the job that and a margin later, a minute at the least (cut_lease_seconds()).
# At most one and a half of the job's lease: claim() takes a lease more than twice its
# length ahead as a clock's mistake, at once, and this leaves hosts half a lease of skew.
CUT_LEASE_SECONDS = 60
CUT_LEASE_MARGIN_SECONDS = 30
# A run claimed more than this after its slot missed the slot (the scheduler, or its
# machine, was down): a daily one then waits its turn (Scheduler.run_due). A look is a
# second; a database that answers again within the minute leaves its run on time.
LATE_SECONDS = 60
# SQLite has one writer at a time: there, the jobs of one scheduler take turns.
_sqlite_turns = threading.Lock()


def holder_name() -> str:
    """Who holds a lease: host, process and a random part (unique per scheduler, even
    when a pid is reused), so the rows say which scheduler ran what."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def claim(job: Job, *, now: datetime, holder: str, late: bool = True) -> bool:
    """Take `job` for one run if it is due and nobody holds it (True: run it now).
    `late` False: only a run on time, not one whose slot was missed (_missed()).

    A clock that ran ahead and was put right (a host without NTP at boot, a manual fix)
    leaves times no clock reading `now` could have set: a next run more than one interval
    and one lease on, or a lease more than twice its length on. Such a time is taken as
    passed, or the job would wait until the clock caught up with it (a year, for a clock
    a year ahead). The lease's margin keeps a host whose clock is only a little behind
    (hosts differ by seconds; a lease is ten minutes or more) from taking a live run, or
    from running again at once a job another host has just finished: that one's next run
    is one interval after a moment this host's clock has not reached yet."""
    # The row is never read whole: a time Python cannot read (PostgreSQL's 'infinity', a
    # year past 9999) failed every look, holding back this job and every later one.
    if not ScheduledJob.objects.filter(name=job.name).exists():
        with contextlib.suppress(IntegrityError), transaction.atomic():
            ScheduledJob.objects.create(name=job.name, next_run_at=now)  # unless another did
    due = Q(next_run_at__lte=now, next_run_at__gte=now - timedelta(seconds=LATE_SECONDS))
    if late:
        due |= _missed(job, now)
    free = (
        Q(lease_until__isnull=True)
        | Q(lease_until__lte=now)
        | Q(lease_until__gt=now + 2 * lease_of(job))
    )
    taken = ScheduledJob.objects.filter(due, free, name=job.name).update(
        lease_holder=holder,
        lease_until=now + lease_of(job),
        last_started_at=now,
    )
    return taken == 1


def _missed(job: Job, now: datetime) -> Q:
    """A slot passed more than LATE_SECONDS ago, or one no clock reading `now` could have
    set (claim()): both are runs the job owes, due now."""
    return Q(next_run_at__lt=now - timedelta(seconds=LATE_SECONDS)) | Q(
        next_run_at__gt=now + timedelta(seconds=job.every) + lease_of(job)
    )


def missed_its_slot(job: Job, *, now: datetime) -> bool:
    """Whether `job`'s row holds a missed slot (_missed()). Asked of a job just claimed:
    the claim leaves next_run_at as it was, and no other scheduler changes it while the
    lease is held."""
    return ScheduledJob.objects.filter(_missed(job, now), name=job.name).exists()


def renew(job: Job, *, holder: str) -> bool:
    """Extend the lease of a run still going (False: the lease was lost to another)."""
    return (
        ScheduledJob.objects.filter(name=job.name, lease_holder=holder).update(
            lease_until=timezone.now() + lease_of(job)
        )
        == 1
    )


def finish(job: Job, *, holder: str, error: str = "") -> None:
    """Release `job` and set its next run (after now: a run that overran skips the slots
    it missed rather than running them back to back)."""
    _end(job, holder=holder, succeeded=not error, last_error=error[:500], runs=F("runs") + 1)


def _end(job: Job, *, holder: str, succeeded: bool, **recorded: Any) -> None:
    """The lease released, the next run set and whether the run succeeded, with what
    else the caller records of it (finish(): its error and the count of runs)."""
    now = timezone.now()
    ScheduledJob.objects.filter(name=job.name, lease_holder=holder).update(
        lease_holder="",
        lease_until=None,
        next_run_at=job.next_after(now),
        last_finished_at=now,
        last_succeeded=succeeded,
        **recorded,
    )


def cut_lease_seconds(job: Job) -> int | None:
    """How long a cut run of `job` stays leased past the stop; None without a statement
    timeout (DB_STATEMENT_TIMEOUT=0), when a statement may run on as long as the job's
    lease."""
    timeout = settings.DB_STATEMENT_TIMEOUT
    if not timeout:
        return None
    longest = job.lease * 3 // 2
    return min(max(CUT_LEASE_SECONDS, timeout + CUT_LEASE_MARGIN_SECONDS), longest)


def cut_short(job: Job, *, holder: str) -> None:
    """Let `job`'s lease end cut_lease_seconds() from now: the stop is ending its run.
    Sooner or later than it would have: a job that renews a short lease (ten minutes,
    every third of it) may have less of it left than its statement may still run."""
    seconds = cut_lease_seconds(job)
    if seconds is None:
        return
    until = timezone.now() + timedelta(seconds=seconds)
    ScheduledJob.objects.filter(name=job.name, lease_holder=holder).update(lease_until=until)


def run_job(
    job: Job,
    *,
    holder: str,
    call: Callable[..., object] = call_command,
    stopping: threading.Event | None = None,
) -> bool:
    """Run one claimed job to its end and record how it went; True if it succeeded.
    Never raises. `stopping`: set when the scheduler is told to stop."""
    turns = _sqlite_turns if connection.vendor == "sqlite" else contextlib.nullcontext()
    with turns:
        error = ""
        try:
            call(*job.command)
        except BaseException as failure:  # a job's SystemExit must not end the loop either
            if isinstance(failure, KeyboardInterrupt):
                raise
            logger.exception("Scheduled job %s failed", job.name)
            # The log's filter cuts tokens from the traceback; the row is kept too, and a
            # database quotes the value it refused, which may be a client's text.
            error = _storable(
                redact_tokens("".join(traceback.format_exception_only(failure)).strip())
            )
        _record_end(job, holder=holder, error=error, stopping=stopping)
    return not error


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _storable(error: str) -> str:
    """A failure's text as its row can keep it: its controls escaped as the log's line
    escapes them (PostgreSQL refuses a NUL in text, which _record_end took for the
    database being away and retried until the lease ran out), and a lone surrogate (which
    no database encodes: the update raised out of run_job) as the replacement character."""
    return _SURROGATE.sub("\ufffd", controls_escaped(error))


# What a run's row keeps of its failure when the row refused the failure's text.
UNRECORDED_ERROR = "The job failed; its error could not be recorded (see the log)."


def release(job: Job, *, holder: str, error: str = "") -> None:
    """What finish() records less what the row may refuse for its data (the failure's
    text, the count of runs): the lease released, the next run set, whether it
    succeeded."""
    _end(job, holder=holder, succeeded=not error, last_error=UNRECORDED_ERROR if error else "")


def _record_end(
    job: Job, *, holder: str, error: str, stopping: threading.Event | None = None
) -> None:
    """Record the run's end, trying again while the database is away or busy
    (core.db_errors.database_away_or_busy), up to the lease's length. Given up after a few
    seconds, the lease held the job until it ran out: a failover of half a minute kept
    detection and webhook delivery from running for ten minutes, and prune_usage for six
    hours. Past the lease, another scheduler may hold the job, and finish() leaves its row
    alone anyway. A scheduler told to stop tries no more (the lease ends the run, as
    before): it waits for its running jobs, and would not exit until the database was
    back, six hours at most.

    Anything else (a value the row refuses, a constraint it would break) fails the same
    way however long it waits: it was retried as an outage until the lease ran out,
    holding the job for every tenant. The end is then recorded without what the row may
    refuse (release()), and if even that is refused, logged and left to the lease."""
    deadline = time.monotonic() + job.lease
    attempt = 0
    writes = [finish, release]
    while writes:
        try:
            with transaction.atomic():  # a refused write leaves no transaction broken
                writes[0](job, holder=holder, error=error)
            return
        except Exception as failure:
            if not (isinstance(failure, DatabaseError) and database_away_or_busy(failure)):
                writes.pop(0)
                logger.error(
                    "Scheduled job %s: its end could not be recorded%s",
                    job.name,
                    "; recording it without its count and error" if writes else "",
                    exc_info=True,
                )
                continue
            close_old_connections()
            attempt += 1
            if time.monotonic() >= deadline or (stopping is not None and stopping.is_set()):
                logger.warning("Scheduled job %s: its end could not be recorded", job.name)
                return
            time.sleep(min(attempt, 10))


def _run_in_thread(job: Job, holder: str, stopping: threading.Event | None = None) -> bool:
    # While the job runs, its lease is renewed every third of its length, so a long run
    # (detection catching up on a backlog) is never taken over and run twice.
    done = threading.Event()

    def keep_lease() -> None:
        every = lease_of(job).total_seconds() / 3
        while not done.wait(every):
            if stopping is not None and stopping.is_set():
                return  # a stop cuts the run short and its lease with it (Scheduler.loop)
            try:
                renew(job, holder=holder)
            except Exception:
                logger.warning("Scheduled job %s: its lease could not be renewed", job.name)
            finally:
                connection.close()

    keeper = threading.Thread(target=keep_lease, name=f"lease-{job.name}", daemon=True)
    keeper.start()
    try:
        return run_job(job, holder=holder, stopping=stopping)
    finally:
        done.set()
        connection.close()  # this thread's own connection


class Scheduler:
    """Runs the due jobs, each in a thread of its own, until stop() is called."""

    def __init__(self, job_list: list[Job] | None = None, *, holder: str | None = None) -> None:
        self.jobs = job_list if job_list is not None else jobs()
        self.holder = holder or holder_name()
        self.stopping = threading.Event()
        self.running: dict[str, threading.Thread] = {}
        # What `run_scheduler --once` reports to cron: the names of the jobs that failed,
        # and whether a look for due jobs found the database away (nothing claimed). A
        # set: the loop runs for months, and one entry per failure grew without end.
        self.failed: set[str] = set()
        self.unreachable = False
        # The daily job catching up on a missed slot in this scheduler, and until when
        # the others wait for it (its lease's length: a run that hangs holds none of them
        # back for good).
        self._catching_up: tuple[str, float] | None = None
        # The looks for due jobs (one a second) say the database is away at the first,
        # then once a minute, not at every look.
        self._outage = OutageLog(
            logger,
            first="Scheduler: the database did not answer; trying again",
            again="Scheduler: the database has not answered for %d s; trying again",
            back="Scheduler: the database answers again, after %d s",
        )

    def run_due(self, now: datetime | None = None) -> list[str]:
        """Start every job that is due and free; the names of those started.

        A daily job that missed its slot (Job.catches_up_in_turn) starts only while no
        other such catch-up runs in this scheduler: after downtime they run one after
        the other, in the order of jobs() (the partitions first), each once."""
        now = now or timezone.now()
        claimed = []
        catching_up = self._still_catching_up()
        for job in self.jobs:
            thread = self.running.get(job.name)
            if thread is not None and thread.is_alive():
                continue
            late = not (job.catches_up_in_turn and catching_up)
            try:
                if claim(job, now=now, holder=self.holder, late=late):
                    claimed.append(job)
                    if job.catches_up_in_turn and late and missed_its_slot(job, now=now):
                        catching_up = True
                        self._catching_up = (job.name, time.monotonic() + job.lease)
            except DatabaseError:
                self._outage.failed(time.monotonic())
                self.unreachable = True
                close_old_connections()
                break
            self._outage.answered(time.monotonic())
        started = []
        for job in claimed:
            thread = threading.Thread(
                target=self._run,
                args=(job,),
                name=f"job-{job.name}",
                daemon=True,
            )
            self.running[job.name] = thread
            thread.start()
            started.append(job.name)
        return started

    def _still_catching_up(self) -> bool:
        if self._catching_up is None:
            return False
        name, until = self._catching_up
        thread = self.running.get(name)
        return thread is not None and thread.is_alive() and time.monotonic() < until

    def _run(self, job: Job) -> None:
        if not _run_in_thread(job, self.holder, self.stopping):
            self.failed.add(job.name)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the jobs running now to end."""
        for thread in list(self.running.values()):
            thread.join(timeout)

    def loop(self, tick: float = TICK_SECONDS) -> None:
        logger.info("Scheduler %s running %d jobs", self.holder, len(self.jobs))
        while not self.stopping.is_set():
            try:
                self.run_due()
            except Exception:
                # Whatever went wrong (a database error Django does not call one, a thread
                # that would not start), the loop goes on: a dead scheduler is a silent one.
                logger.exception("Scheduler: a look for due jobs failed; trying again")
                close_old_connections()
            self.stopping.wait(tick)
        self._end_running()

    def _end_running(self) -> None:
        """Wait up to STOP_GRACE_SECONDS for the running jobs to end; cut the rest short.
        Their threads end with the process, and their open transactions with its
        connections: a job's run is written to survive that, as it survives a crash, and
        its next run takes up where the last commit left it."""
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for thread in list(self.running.values()):
            thread.join(max(0.0, deadline - time.monotonic()))
        for job in self.jobs:
            running = self.running.get(job.name)
            if running is None or not running.is_alive():
                continue
            seconds = cut_lease_seconds(job)
            logger.warning(
                "Scheduled job %s cut short by the stop; another scheduler may take it in %s",
                job.name,
                f"{seconds} s" if seconds else "its lease's time (no statement timeout)",
            )
            try:
                cut_short(job, holder=self.holder)
            except DatabaseError:
                logger.warning("Scheduled job %s: its lease could not be cut short", job.name)
                close_old_connections()

    def stop(self) -> None:
        self.stopping.set()
