"""`manage.py send_token_expiry_reminders`: email owners of tokens expiring soon.

run_scheduler runs it hourly; without it (SCHEDULER=off), from cron: `0 * * * * cd
/srv/reminix && .venv/bin/python manage.py send_token_expiry_reminders`. A personal access
token gets one reminder (7 days ahead), an API key two (7 days and 1 day ahead, to its
project's owners and the members who chose these emails: notifications/), however often
this runs.
"""

from apikeys.reminders import send_expiry_reminders
from core.commands import OperatorCommand


class Command(OperatorCommand):
    """Runs send_expiry_reminders() (apikeys/reminders.py): hourly under run_scheduler (README,
    Scheduled jobs); prints how many went and how many wait for the next run."""

    help = "Email the owners of tokens that expire soon (PATs: 7 days; API keys: 7 and 1 day)."

    def handle(self, *args: object, **options: object) -> None:
        result = send_expiry_reminders()
        self.stdout.write(f"Sent {result.sent} reminder{'s' if result.sent != 1 else ''}.")
        if result.skipped:
            # Each was logged; unclaimed, it is tried again by the next run.
            self.stderr.write(f"{result.skipped} skipped (see the log); tried again next run.")
