"""`manage.py prune_executions --older-than 90d`: drop the execution log's old runs.

run_scheduler runs it daily at 00:35 UTC with USAGE_RETENTION, so runs are kept as long as
their calls; without it (SCHEDULER=off), from cron:
`35 0 * * * cd /srv/reminix && .venv/bin/python manage.py prune_executions --older-than 90d`.
"""

from django.core.management.base import CommandError, CommandParser

from agents.retention import executions_prune
from core.commands import OperatorCommand
from usage.retention import parse_age


class Command(OperatorCommand):
    """Runs executions_prune() (agents/retention.py) and says what went: daily at 00:35 UTC
    under run_scheduler with --older-than USAGE_RETENTION (README, Scheduled jobs and
    Retention)."""

    help = (
        "Remove agent executions (what each invoke and chat sent and answered) that ran "
        "before the cut-off: the start of the UTC hour that was --older-than ago, as "
        "prune_usage cuts the usage log."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            required=True,
            metavar="AGE",
            help="how long to keep executions: whole days or hours, e.g. 90d or 36h",
        )

    def handle(self, *args: object, older_than: str, **options: object) -> None:
        try:
            age = parse_age(older_than)
        except ValueError as error:
            raise CommandError(str(error)) from error
        pruned = executions_prune(older_than=age)
        self.stdout.write(
            f"Cut-off: {pruned.cutoff:%Y-%m-%d %H:%M} UTC; removed {pruned.removed:,} "
            f"execution{'s' if pruned.removed != 1 else ''} that ran before it."
        )
