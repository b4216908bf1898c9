"""What the management commands share: arguments checked as the operator typed them, so
that a slip gives one line saying what is wrong (a CommandError), never a traceback.

Bytes on a command line that are not UTF-8 (a terminal set to Latin-1, a name pasted from
a file in another encoding) reach Python as lone surrogates (PEP 383). No database column
takes them: psycopg and sqlite3 raise UnicodeEncodeError on the first query that carries
one, and so does the Redis client.
"""

from __future__ import annotations

import math
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.redact import controls_escaped, redact_secrets


class OperatorCommand(BaseCommand):
    """Every command of ours: its errors (argparse's and its own CommandErrors), which echo
    what was typed, never repeat a token, and stay one line. stderr is what cron mails and
    a deploy's log keeps: a token pasted into the wrong argument (`--project $KEY`) was
    printed back whole there (its prefix stays, so the operator still sees what was
    pasted), and a line break in an argument started a line of the argument's own."""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        refuse = parser.error

        def error(message: str) -> NoReturn:
            refuse(_shown(message))
            raise AssertionError("unreachable: argparse's error exits or raises")

        parser.error = error  # type: ignore[method-assign]
        return parser

    def execute(self, *args: Any, **options: Any) -> str | None:
        try:
            return super().execute(*args, **options)
        except CommandError as error:
            message = str(error)
            if _shown(message) == message:
                raise
            raise CommandError(_shown(message), returncode=error.returncode) from None


def _shown(message: str) -> str:
    """An error's message as it may be printed: no secret, one line (a control or line
    separator percent-escaped, "%0A")."""
    return controls_escaped(redact_secrets(message))


def require_text(arguments: dict[str, str]) -> None:
    """Each argument is text that can be stored: {"--owner": owner, "The name": name}.

    No NUL either: a shell cannot pass one, a script's call_command can, and PostgreSQL's
    driver refuses it in any query (DataError) where SQLite takes it."""
    for label, value in arguments.items():
        if "\x00" in value:
            raise CommandError(
                f"{label} holds a NUL character (character {value.index(chr(0)) + 1})."
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as odd:
            raise CommandError(
                f"{label} is not UTF-8 text (character {odd.start + 1} is a byte of another "
                "encoding). Check the terminal's encoding and type it again."
            ) from None


def require_name(arguments: dict[str, str]) -> None:
    """Each argument is text that can be stored (require_text) and names something: not
    empty, not only spaces, and every character one that prints (no line break, tab,
    control or invisible character, which a list of names would show as nothing or as a
    line of its own)."""
    require_text(arguments)
    for label, value in arguments.items():
        if not value.strip():
            raise CommandError(f"{label} is empty: give it a name.")
        odd = next((i for i, char in enumerate(value) if not char.isprintable()), None)
        if odd is not None:
            raise CommandError(
                f"{label} holds a character that does not print (character {odd + 1}: a "
                "control, a line break or an invisible one). Type it again."
            )


def require_whole_number(option: str, value: int, *, least: int, most: int) -> None:
    """`value` of --`option` is from `least` to `most`."""
    if not least <= value <= most:
        raise CommandError(f"--{option} is a whole number from {least:,} to {most:,}.")


def require_seconds(option: str, value: float, *, least: float, most: float) -> None:
    """`value` of --`option` is a number of seconds from `least` to `most` (never NaN)."""
    if not (math.isfinite(value) and least <= value <= most):
        raise CommandError(f"--{option} is a number of seconds from {least:g} to {most:g}.")
