"""`manage.py deliver_webhooks`: enqueue new alerts for each endpoint, send what is due.

Run every minute (the scheduler does; see README, Scheduled jobs). One endpoint that
times out or fails never stops the others: each send is recorded and the run goes on.
"""

from django.core.management.base import BaseCommand

from webhooks.delivery import deliver


class Command(BaseCommand):
    help = "Enqueue alerts for webhook endpoints and send the deliveries that are due."

    def handle(self, *args: object, **options: object) -> None:
        result = deliver()
        self.stdout.write(
            f"Enqueued {result.enqueued} deliveries; {result.succeeded} delivered, "
            f"{result.failed} failed."
        )
        if result.errors:
            self.stderr.write(f"{result.errors} errors (skipped; see the log).")
