"""`manage.py finish_usage_partitions`: attach a day's partition that a run cut short left
beside the usage log.

PostgreSQL only (on SQLite it does nothing). run_scheduler runs it every minute; without it
(SCHEDULER=off), from cron: `* * * * * cd /srv/reminix && .venv/bin/python manage.py
finish_usage_partitions`. While a day's table stands unattached (ensure_usage_partitions or
prune_usage killed, stopped by a deploy or a timeout between building it and the attach),
its moved calls are off the call log and detection reads nothing, for every tenant: this
bounds that to a minute or two instead of the next daily run. With nothing to finish, it
is one catalog query and prints nothing.
"""

from django.core.management.base import CommandError

from core.commands import OperatorCommand
from usage.retention import RetentionBusyError, usage_partitions_finish


class Command(OperatorCommand):
    """Runs usage_partitions_finish() (usage/retention.py): every minute under run_scheduler
    (README, Scheduled jobs). A day another run is moving is left to it."""

    help = (
        "PostgreSQL: finish moving calls into a day's partition that a cut-short run left "
        "unattached, and attach it (detection waits for that). Safe to run at any time."
    )

    def handle(self, *args: object, **options: object) -> None:
        try:
            attached = usage_partitions_finish()
        except RetentionBusyError as error:
            raise CommandError(str(error)) from error
        for name in attached:
            self.stdout.write(f"Attached partition {name}.")
