"""`manage.py deliver_webhooks`: enqueue new alerts for each endpoint, send what is due.

Run every minute from cron, or every few seconds by the scheduler (see README, Scheduled
jobs), which is how a queued test or retry goes out. One endpoint that times out or
fails never stops the others: each send is recorded and the run goes on.
"""

from typing import Any

from core.commands import OperatorCommand
from webhooks.delivery import deliver


class Command(OperatorCommand):
    """Runs deliver() (webhooks/delivery.py): every WEBHOOK_DELIVERY_EVERY_SECONDS (10 s) under
    run_scheduler (README, Scheduled jobs and Webhooks)."""

    help = "Enqueue alerts for webhook endpoints and send the deliveries that are due."

    def handle(self, *args: object, **options: Any) -> None:
        result = deliver()
        # Quiet when nothing was due: the scheduler runs this every few seconds, and cron
        # mails whatever a job prints.
        if result.enqueued or result.succeeded or result.failed or options["verbosity"] > 1:
            self.stdout.write(
                f"Enqueued {result.enqueued} deliveries; {result.succeeded} delivered, "
                f"{result.failed} failed."
            )
        if result.errors:
            self.stderr.write(f"{result.errors} errors (skipped; see the log).")
