"""`manage.py prune_client_tokens`: remove client tokens that ended more than 30 days ago
and that no alert or logged call points to (apikeys/retention.py).

run_scheduler runs it daily; without it (SCHEDULER=off), from cron: `30 0 * * * cd
/srv/reminix && .venv/bin/python manage.py prune_client_tokens`. Safe to run at any time
and again.
"""

from apikeys.retention import KEEP, client_tokens_prune
from core.commands import OperatorCommand


class Command(OperatorCommand):
    """Runs client_tokens_prune() (apikeys/retention.py): daily at 00:30 UTC under run_scheduler
    (README, Scheduled jobs)."""

    help = (
        f"Remove client tokens that ended more than {KEEP.days} days ago, except those an "
        "alert or a call in the usage log points to."
    )

    def handle(self, *args: object, **options: object) -> None:
        result = client_tokens_prune()
        self.stdout.write(
            f"Removed {result.removed:,} client token{'s' if result.removed != 1 else ''}."
        )
        if result.skipped:
            self.stdout.write(
                f"{result.skipped:,} project{'s' if result.skipped != 1 else ''} left for the "
                "next run (see the log)."
            )
