"""`manage.py prune_webhook_deliveries`: remove webhook deliveries enqueued more than 30
days ago (webhooks/retention.py).

run_scheduler runs it daily; without it (SCHEDULER=off), from cron: `25 0 * * * cd
/srv/reminix && .venv/bin/python manage.py prune_webhook_deliveries`. Safe to run at any
time and again.
"""

from core.commands import OperatorCommand
from webhooks.retention import KEEP, deliveries_prune


class Command(OperatorCommand):
    """Runs deliveries_prune() (webhooks/retention.py): daily at 00:25 UTC under run_scheduler
    (README, Scheduled jobs)."""

    help = f"Remove webhook deliveries enqueued more than {KEEP.days} days ago."

    def handle(self, *args: object, **options: object) -> None:
        removed = deliveries_prune()
        self.stdout.write(f"Removed {removed:,} webhook deliver{'y' if removed == 1 else 'ies'}.")
