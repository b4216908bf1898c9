"""What runs when: the commands of the README's Scheduled jobs table, on its schedule.

Each job is a management command with its arguments, run every `every` seconds at fixed
points of the UTC clock (every minute on the minute, every hour on the hour, every day at
00:00 plus `offset`), and held by a lease of `lease` seconds while it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

MINUTE, HOUR, DAY = 60, 3600, 86400


@dataclass(frozen=True)
class Job:
    """One scheduled job: the command and arguments run_scheduler runs, every how many seconds,
    at what offset, and how long its lease holds. Its state (next run, lease, last error) is
    the ScheduledJob row of the same name; the README's Scheduled jobs table follows these."""

    name: str
    command: tuple[str, ...]
    every: int  # seconds
    lease: int = HOUR  # seconds; longer than any run, so a live run is never taken over
    offset: int = 0  # seconds after each point of the clock

    @property
    def catches_up_in_turn(self) -> bool:
        """A daily job that missed its slot (the scheduler was down) runs once, soon after
        the scheduler is back, one such at a time (scheduler.runner.Scheduler.run_due):
        their slots keep them minutes apart, a catch-up of days brings them together."""
        return self.every >= DAY

    def next_after(self, moment: datetime) -> datetime:
        """The first run time strictly after `moment`."""
        epoch = moment.timestamp() - self.offset
        slot = (int(epoch) // self.every + 1) * self.every + self.offset
        return datetime.fromtimestamp(slot, tz=moment.tzinfo)


def jobs() -> list[Job]:
    detect_every = max(1, settings.DETECTION_EVERY_SECONDS)
    return [
        Job(
            "detect_suspicious_activity",
            ("detect_suspicious_activity",),
            every=detect_every,
            lease=10 * MINUTE,
        ),
        # A day's partition a run cut short left unattached pauses detection for everyone:
        # attached within minutes, not at the next daily run. Nothing to do: one query.
        Job(
            "finish_usage_partitions",
            ("finish_usage_partitions",),
            every=MINUTE,
            lease=10 * MINUTE,
        ),
        # Alerts, and the tests and retries owners queue, reach webhooks within seconds; a
        # run stops starting sends after 45 s, and a run still going holds off the next.
        Job(
            "deliver_webhooks",
            ("deliver_webhooks",),
            every=settings.WEBHOOK_DELIVERY_EVERY_SECONDS,
            lease=10 * MINUTE,
        ),
        Job("send_token_expiry_reminders", ("send_token_expiry_reminders",), every=HOUR),
        Job("ensure_usage_partitions", ("ensure_usage_partitions",), every=DAY, offset=HOUR),
        Job(
            "prune_usage",
            ("prune_usage", "--older-than", settings.USAGE_RETENTION),
            every=DAY,
            offset=5 * MINUTE,
            lease=6 * HOUR,
        ),
        Job(
            "prune_idempotency_records",
            ("prune_idempotency_records",),
            every=DAY,
            offset=15 * MINUTE,
        ),
        Job("clear_sessions", ("clear_sessions",), every=DAY, offset=20 * MINUTE),
        Job(
            "prune_webhook_deliveries",
            ("prune_webhook_deliveries",),
            every=DAY,
            offset=25 * MINUTE,
        ),
        Job("prune_client_tokens", ("prune_client_tokens",), every=DAY, offset=30 * MINUTE),
        # The execution log goes with the calls: kept as long as the usage log.
        Job(
            "prune_executions",
            ("prune_executions", "--older-than", settings.USAGE_RETENTION),
            every=DAY,
            offset=35 * MINUTE,
        ),
    ]


def lease_of(job: Job) -> timedelta:
    return timedelta(seconds=job.lease)
