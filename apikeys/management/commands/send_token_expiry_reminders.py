"""`manage.py send_token_expiry_reminders`: email owners of tokens expiring within 7 days.

Run it daily, e.g. from cron: `15 8 * * * cd /srv/reminix && .venv/bin/python manage.py
send_token_expiry_reminders`. Each token gets one reminder, however often this runs.
"""

from django.core.management.base import BaseCommand

from apikeys.reminders import send_expiry_reminders


class Command(BaseCommand):
    help = "Email the owners of personal access tokens that expire within 7 days."

    def handle(self, *args: object, **options: object) -> None:
        sent = send_expiry_reminders()
        self.stdout.write(f"Sent {sent} reminder{'s' if sent != 1 else ''}.")
