"""`manage.py createproject --owner <email> <name>`: prints the new project's slug."""

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from accounts.models import Project, User
from accounts.services import TooManyProjects, project_create
from core.commands import OperatorCommand, require_text


class Command(OperatorCommand):
    """Creates a project through project_create(), as sign-up does (so it gets its echo agent),
    for an existing active user; the bench and the server tests set up with it."""

    help = "Create a project owned by an existing user and print its slug."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--owner", required=True, help="email of an existing user")

    def handle(self, *args: object, name: str, owner: str, **options: object) -> None:
        require_text({"The name": name, "--owner": owner})
        user = (
            User.objects.with_address(User.objects.address_kept(owner))
            .filter(is_active=True)
            .first()
        )
        if user is None:
            raise CommandError(f"No user with the email {owner}. Create one first.")
        if not name.strip():
            raise CommandError("The project needs a name.")
        longest = Project._meta.get_field("name").max_length or 0
        if len(name.strip()) > longest:
            # PostgreSQL would refuse the row with a DataError; SQLite would keep it whole.
            raise CommandError(f"The project's name can be at most {longest} characters.")
        try:
            # The rules the dashboard's form applies: one line of text, holding no token.
            Project._meta.get_field("name").run_validators(name.strip())
        except ValidationError as refused:
            raise CommandError(" ".join(refused.messages)) from None
        try:
            project = project_create(name=name, owner=user)
        except TooManyProjects as full:
            raise CommandError(str(full)) from None
        self.stdout.write(project.slug)
