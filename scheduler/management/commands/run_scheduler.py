"""`manage.py run_scheduler`: run the scheduled jobs (scheduler/jobs.py) until stopped.

`make run` and `make serve` start it beside the web server. Safe to run more than once
(each run of a job happens in one scheduler only; scheduler/runner.py). Stops on SIGTERM or
Ctrl-C once the jobs running then end, or after 5 s, cutting short those still running
(their leases end a minute later: scheduler/runner.py). `--once`: run what is due now, wait
for it, and exit (for cron, or a test): with status 1 if a job failed or the database did
not answer, so that cron's mail or a monitor hears of it.
"""

from __future__ import annotations

import signal
from types import FrameType

from django.core.management.base import CommandError, CommandParser

from core.commands import OperatorCommand, require_seconds, seconds
from scheduler.runner import TICK_SECONDS, Scheduler

# Looks more often than this are only load; rarer than an hour leave minutely jobs waiting,
# and past some 10^9 s the wait itself fails (OverflowError), after a first run.
SHORTEST_TICK, LONGEST_TICK = 0.05, 3600.0


class Command(OperatorCommand):
    """The scheduler process: a Scheduler (scheduler/runner.py) looping until SIGTERM or
    Ctrl-C, or with --once running what is due and exiting 1 if a job failed or the database
    did not answer."""

    help = "Run the scheduled jobs (detection every minute, reminders, partitions, pruning)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="run what is due, then exit")
        parser.add_argument(
            "--tick", type=seconds, default=TICK_SECONDS, help="seconds between looks"
        )

    def handle(self, *args: object, once: bool, tick: float, **options: object) -> None:
        require_seconds("tick", tick, least=SHORTEST_TICK, most=LONGEST_TICK)
        scheduler = Scheduler()
        if once:
            started = scheduler.run_due()
            scheduler.wait()
            self.stdout.write(f"Ran {len(started)} due jobs: {', '.join(started) or 'none'}.")
            if scheduler.unreachable:
                raise CommandError("The database did not answer: due jobs may not have run.")
            if scheduler.failed:
                failed = ", ".join(sorted(scheduler.failed))
                raise CommandError(f"Failed: {failed} (the log says why).")
            return

        def stop(signum: int, frame: FrameType | None) -> None:
            scheduler.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write(f"Scheduler {scheduler.holder}: {len(scheduler.jobs)} jobs.")
        scheduler.loop(tick=tick)
