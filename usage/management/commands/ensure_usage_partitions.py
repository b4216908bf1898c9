"""`manage.py ensure_usage_partitions`: make the usage log's partitions for the coming days.

PostgreSQL only (on SQLite it says so and does nothing). run_scheduler runs it daily;
without it (SCHEDULER=off), from cron: `0 1 * * * cd /srv/reminix && .venv/bin/python
manage.py ensure_usage_partitions`.
Migration 0009 and every prune_usage run make the same partitions, so one missed day is
harmless; a call whose day has no partition lands in the default partition, and is moved
into its day when that day's partition is made. A day's table a run cut short left
unattached is finished first, whatever its day (finish_usage_partitions does the same every
minute: detection waits for it).
"""

from django.core.management.base import CommandError, CommandParser

from core.commands import OperatorCommand, whole_number
from usage.retention import (
    DAYS_AHEAD,
    RetentionBusyError,
    usage_is_partitioned,
    usage_partitions_ensure_ahead,
)


class Command(OperatorCommand):
    """Runs usage_partitions_ensure_ahead() (usage/retention.py): daily at 01:00 UTC under
    run_scheduler (README, Scheduled jobs); prune_usage does the same first."""

    help = (
        "PostgreSQL: make the usage log's daily partitions (UTC days) from today to "
        f"--days ahead (default {DAYS_AHEAD}) where they are missing. Safe to run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=whole_number, default=DAYS_AHEAD, help="days ahead of today"
        )

    def handle(self, *args: object, days: int, **options: object) -> None:
        if not 0 <= days <= 366:
            raise CommandError("--days must be between 0 and 366.")
        if not usage_is_partitioned():
            self.stdout.write("The usage log is not partitioned on this database: nothing to do.")
            return
        try:
            made = usage_partitions_ensure_ahead(days=days)
        except RetentionBusyError as error:
            raise CommandError(str(error)) from error
        for name in made:
            self.stdout.write(f"Created partition {name}.")
        self.stdout.write(f"{len(made)} partition{'s' if len(made) != 1 else ''} created.")
