"""`manage.py prune_idempotency_records`: forget the answers kept for Idempotency-Key retries
once their 24 hours are over (and those dated more than a day ahead, which a host's clock
running ahead wrote, and which would otherwise never be old enough).

run_scheduler runs it daily; without it (SCHEDULER=off), from cron: `15 0 * * * cd
/srv/reminix && .venv/bin/python manage.py prune_idempotency_records`. Safe to run at any
time and again.
"""

from api.idempotency import idempotency_records_prune
from core.commands import OperatorCommand


class Command(OperatorCommand):
    """Runs idempotency_records_prune() (api/idempotency.py): daily at 00:15 UTC under
    run_scheduler (README, Scheduled jobs)."""

    help = (
        "Remove the answers kept for Idempotency-Key retries that are older than 24 hours "
        "or dated more than a day ahead."
    )

    def handle(self, *args: object, **options: object) -> None:
        removed = idempotency_records_prune()
        self.stdout.write(f"Removed {removed:,} idempotency record{'s' if removed != 1 else ''}.")
