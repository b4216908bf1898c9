"""`manage.py detect_suspicious_activity`: read new usage and raise alerts (flags).

run_scheduler runs it every minute; without it (SCHEDULER=off), from cron: `* * * * * cd
/srv/reminix && .venv/bin/python manage.py detect_suspicious_activity`. It continues from
where the last run stopped, so a run that was missed is caught up by the next. Runs do not
overlap harmfully: each batch locks the detector's cursor row. A check, alert or email
that fails on one project's data is logged and skipped, and the run goes on for everyone
else.
"""

import time

from django.core.management.base import CommandParser

from alerts.detection import detect
from core.commands import OperatorCommand, require_whole_number, whole_number

# Each batch is read into memory whole, in one transaction: ten times the default at most.
MAX_BATCH_SIZE = 100_000


class Command(OperatorCommand):
    """Runs detect() (alerts/detection/run.py) and prints its throughput: every minute under
    run_scheduler (DETECTION_EVERY_SECONDS; README, Scheduled jobs)."""

    help = "Scan new API usage for suspicious activity, raise alerts and email owners."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=whole_number, default=10_000)

    def handle(self, *args: object, batch_size: int, **options: object) -> None:
        require_whole_number("batch-size", batch_size, least=1, most=MAX_BATCH_SIZE)
        started = time.perf_counter()
        result = detect(batch_size=batch_size)
        seconds = time.perf_counter() - started
        rate = result.rows / seconds if seconds else 0
        self.stdout.write(
            f"Read {result.rows} calls in {seconds:.2f} s ({rate:,.0f}/s); "
            f"{result.flags_raised} new alerts, {result.flags_updated} updated, "
            f"{result.emails} emails."
        )
        if result.failures:
            # Each was logged with its traceback; the run went on past them.
            self.stderr.write(
                f"{result.failures} failures (checks, alerts or emails skipped; see the log)."
            )
