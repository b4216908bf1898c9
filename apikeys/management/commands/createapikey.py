"""`manage.py createapikey --project <slug> --name <name> [--permissions agents,read,write]`

Prints the new key once, on stdout, and nothing else there, so a deploy script can read it:
    KEY=$(python manage.py createapikey --project acme --name CI)
"""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from accounts.models import Project
from accounts.services import NoLongerAMember
from apikeys.models import ALL_PERMISSIONS, ApiKey
from apikeys.services import (
    LONGEST_LIFETIME,
    KeyNameTaken,
    OutOfPolicy,
    TooManyTokens,
    api_key_create,
)
from core.commands import OperatorCommand, require_text, whole_number


class Command(OperatorCommand):
    """Creates a key through api_key_create(), as the dashboard does (the project's policy and
    limits apply, created_by empty), and prints its secret alone on stdout."""

    help = "Create an API key for a project and print it once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--name", required=True, help="what the key is for")
        parser.add_argument(
            "--permissions",
            default=",".join(ALL_PERMISSIONS),
            help="comma-separated subset of agents,read,write (default: all)",
        )
        parser.add_argument(
            "--expires-in-days",
            type=whole_number,
            default=None,
            help="the key stops working after this many days (default: never; a project whose "
            "lifetime policy sets a maximum needs it, within that maximum)",
        )

    def handle(
        self,
        *args: object,
        project: str,
        name: str,
        permissions: str,
        expires_in_days: int | None,
        **options: object,
    ) -> None:
        require_text({"--project": project, "--name": name, "--permissions": permissions})
        target = Project.objects.filter(slug=project, deleted_at__isnull=True).first()
        if target is None:
            raise CommandError(f"No project with the slug {project}.")
        if not name.strip():
            raise CommandError("The key needs a name.")
        longest = ApiKey._meta.get_field("name").max_length or 0
        if len(name.strip()) > longest:
            # PostgreSQL would refuse the row with a DataError; SQLite would keep it whole.
            raise CommandError(f"The key's name can be at most {longest} characters.")
        chosen = [p.strip() for p in permissions.split(",") if p.strip()]
        unknown = sorted(set(chosen) - set(ALL_PERMISSIONS))
        if unknown or not chosen:
            what = f"Unknown permissions: {', '.join(unknown)}. " if unknown else ""
            raise CommandError(
                f"{what}Permissions are a comma-separated subset of {','.join(ALL_PERMISSIONS)}."
            )
        expires_at = None
        if expires_in_days is not None:
            longest = LONGEST_LIFETIME.days
            # Checked before the arithmetic: a day count past timedelta's range overflows.
            if not 1 <= expires_in_days <= longest:
                raise CommandError(f"--expires-in-days is from 1 to {longest} (ten years).")
            expires_at = timezone.now() + timedelta(days=expires_in_days)
        try:
            api_key, token = api_key_create(
                project=target,
                name=name,
                created_by=None,
                permissions=chosen,
                expires_at=expires_at,
            )
        except NoLongerAMember:  # deleted since it was looked up above
            raise CommandError(f"No project with the slug {project}.") from None
        except OutOfPolicy as refused:
            # None given, or more than the policy's: the same fix, so say how many.
            days = target.max_key_lifetime_days
            within = f" of at most {days}" if days else ""
            raise CommandError(f"{refused} Use --expires-in-days{within}.") from None
        except TooManyTokens as full:
            raise CommandError(str(full)) from None
        except ValidationError as refused:  # not one line of visible text, say
            raise CommandError(" ".join(refused.messages)) from None
        except KeyNameTaken:
            raise CommandError(
                f"A working key of project {project} is already called “{name.strip()}” "
                "(whatever its case): choose a --name you can tell apart."
            ) from None
        self.stderr.write(f"Created {api_key.name} ({api_key.hint}). It is shown only now:")
        self.stdout.write(token)
