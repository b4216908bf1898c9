"""`manage.py prune_usage --older-than 90d`: drop the usage log's old calls and roll-ups.

run_scheduler runs it daily just after midnight UTC, when the cut-off falls on a day's
boundary and PostgreSQL only has whole days to drop; without it (SCHEDULER=off), from cron:
`5 0 * * * cd /srv/reminix && .venv/bin/python manage.py prune_usage --older-than 90d`.
"""

from django.core.management.base import CommandError, CommandParser

from core.commands import OperatorCommand
from usage.retention import MIN_KEEP, RetentionBusyError, parse_age, usage_prune


class Command(OperatorCommand):
    """Runs usage_prune() (usage/retention.py) and prints what went: daily at 00:05 UTC under
    run_scheduler with --older-than USAGE_RETENTION (README, Scheduled jobs and Retention)."""

    help = (
        "Remove API calls logged before the cut-off, with the roll-ups that summarise "
        "them (hourly, daily, per-address and unattributed). The cut-off is the start of "
        "the UTC hour that was --older-than ago, so every call is kept at least that long "
        "and at most an hour more. On PostgreSQL whole days are dropped; first, partitions "
        "for the coming days are made, as ensure_usage_partitions does."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            required=True,
            metavar="AGE",
            help="how long to keep calls: whole days or hours, e.g. 90d or 36h",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help=f"allow keeping less than {MIN_KEEP.days} days (the detector's baseline)",
        )

    def handle(self, *args: object, older_than: str, force: bool, **options: object) -> None:
        try:
            age = parse_age(older_than)
        except ValueError as error:
            raise CommandError(str(error)) from error
        if age < MIN_KEEP and not force:
            raise CommandError(
                f"Keeping less than {MIN_KEEP.days} days blinds the suspicious-activity "
                "detector's volume baseline. Pass --force if that is what you want."
            )
        try:
            report = usage_prune(older_than=age)
        except RetentionBusyError as error:
            raise CommandError(str(error)) from error
        write = self.stdout.write
        write(f"Cut-off: {report.cutoff:%Y-%m-%d %H:%M} UTC; calls logged before it are removed.")
        for name in report.partitions_created:
            write(f"Created partition {name}.")
        for name, rows in report.partitions_dropped:
            write(f"Dropped partition {name} ({_count(rows, 'call')}).")
        write(f"Deleted {_count(report.rows_deleted, 'call')} row by row.")
        write(f"Removed {_count(report.calls_removed, 'call')} in all.")
        write(
            f"Removed roll-ups: {_count(report.usage_hours, 'key-hour')}, "
            f"{_count(report.usage_ips, 'key-address', 'key-addresses')}, "
            f"{_count(report.project_hours, 'project-hour group')}, "
            f"{_count(report.project_days, 'project-day group')}, "
            f"{_count(report.unattributed_hours, 'unattributed hour count')}."
        )


def _count(n: int, one: str, many: str = "") -> str:
    return f"{n:,} {one if n == 1 else many or one + 's'}"
