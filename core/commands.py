"""What the management commands share: arguments checked as the operator typed them, so
that a slip gives one line saying what is wrong (a CommandError), never a traceback.

Bytes on a command line that are not UTF-8 (a terminal set to Latin-1, a name pasted from
a file in another encoding) reach Python as lone surrogates (PEP 383). No database column
takes them: psycopg and sqlite3 raise UnicodeEncodeError on the first query that carries
one, and so does the Redis client.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.redact import (
    controls_escaped,
    holds_secret_escaped,
    redact_secrets_spaced,
    redact_tokens_escaped,
)

# What an error quotes of an argument: its start, and how long it was.
QUOTED_CHARS = 100
# A run this long without a space, in an error, is a piece of an argument (one of a
# comma-separated list, say) rather than the command's own words.
_LONG_RUN = re.compile(rf"\S{{{QUOTED_CHARS + 1},}}")


class OperatorCommand(BaseCommand):
    """Every command of ours: its errors (argparse's and its own CommandErrors), which echo
    what was typed, never repeat a token, stay one line, and quote only the start of a long
    argument. stderr is what cron mails and a deploy's log keeps: a token pasted into the
    wrong argument (`--project $KEY`) was printed back whole there (its prefix stays, so the
    operator still sees what was pasted), a line break in an argument started a line of
    the argument's own, and a slug of 10,000 characters filled the mail."""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        refuse, parse_known_args = parser.error, parser.parse_known_args
        typed: list[str] = []  # what the parser was last given, which its errors quote

        def parse_known(args: Any = None, namespace: Any = None) -> Any:
            typed[:] = _texts(sys.argv[1:] if args is None else args)
            return parse_known_args(args, namespace)

        def error(message: str) -> NoReturn:
            refuse(_shown(message, typed))
            raise AssertionError("unreachable: argparse's error exits or raises")

        parser.parse_known_args = parse_known  # type: ignore[method-assign]
        parser.error = error  # type: ignore[method-assign]
        return parser

    def execute(self, *args: Any, **options: Any) -> str | None:
        try:
            return super().execute(*args, **options)
        except CommandError as error:
            message = str(error)
            shown = _shown(message, _texts([*args, *options.values()]))
            if shown == message:
                raise
            raise CommandError(shown, returncode=error.returncode) from None


def _texts(values: Iterable[object]) -> list[str]:
    """The strings among `values` (an option's list of them included), and of an
    "--option=value" the value too, as an error quotes it."""
    texts: list[str] = []
    for value in values:
        for text in value if isinstance(value, list | tuple) else [value]:
            if isinstance(text, str):
                texts.append(text)
                if text.startswith("-") and "=" in text:
                    texts.append(text.partition("=")[2])
    return texts


def _shown(message: str, typed: Iterable[str] = ()) -> str:
    """An error's message as it may be printed: no secret (nor one a paste cut with a
    line break or a space), each long argument cut to its start (_quoted_short), one line
    (a control or line separator percent-escaped, "%0A").
    Cut after the secrets are: a token the cut went through would keep fewer characters
    than redact_secrets takes for one, and those its secret's."""
    redacted = redact_secrets_spaced(message)
    if holds_secret_escaped(redacted):
        # A token copied out of a URL ("reminix%5Fsk%5F…"): cut where it reads as one.
        redacted = redact_tokens_escaped(redacted)
    return controls_escaped(_quoted_short(redacted, typed))


def _quoted_short(message: str, typed: Iterable[str]) -> str:
    """`message` (redacted) with each argument longer than QUOTED_CHARS that it quotes, as
    typed, stripped or as argparse's repr() spells it, cut to its start and "… (10,000
    characters)"; and any other run of as many characters without a space too."""
    cut: dict[str, str] = {}
    for value in typed:
        if len(value) <= QUOTED_CHARS:
            continue
        for form in (value, value.strip(), repr(value)[1:-1]):
            form = redact_secrets_spaced(form)
            if len(form) > QUOTED_CHARS:
                cut.setdefault(form, f"{form[:QUOTED_CHARS]}… ({len(value):,} characters)")
    pieces: list[str] = []
    kept = 0
    if cut:
        quoted = re.compile("|".join(map(re.escape, sorted(cut, key=len, reverse=True))))
        for match in quoted.finditer(message):
            pieces += [_runs_cut(message[kept : match.start()]), cut[match.group()]]
            kept = match.end()
    pieces.append(_runs_cut(message[kept:]))
    return "".join(pieces)


def _runs_cut(text: str) -> str:
    return _LONG_RUN.sub(_run_cut, text)


def _run_cut(match: re.Match[str]) -> str:
    """A long run cut to its start; the sentence's own stop or quote after it kept."""
    run = match.group()
    quoted = run.rstrip(".,;:!?'\"”’)")
    if len(quoted) <= QUOTED_CHARS:
        return run
    return f"{quoted[:QUOTED_CHARS]}… ({len(quoted):,} characters){run[len(quoted) :]}"


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


def whole_number(text: str) -> int:
    """An option's whole number, typed in the digits 0-9 (`type=whole_number`).

    int() reads every script's decimal digits: "٣" (Arabic-Indic) and "３" (full-width) are
    3 to it, so a slip of a right-to-left or East Asian keyboard ran as a number nobody
    saw typed. argparse says "argument --days: …" with this message."""
    return _read_in_ascii_digits(text, int, "a whole number")


def seconds(text: str) -> float:
    """An option's number of seconds, typed in the digits 0-9 (`type=seconds`); as
    whole_number, for float(), which reads other scripts' digits too."""
    return _read_in_ascii_digits(text, float, "a number")


def _read_in_ascii_digits[N: (int, float)](text: str, read: Callable[[str], N], what: str) -> N:
    """`read(text)`, refusing text outside ASCII before it is read."""
    try:
        if text.isascii():
            return read(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{text!r} is not {what} in the digits 0-9.")


def require_whole_number(option: str, value: int, *, least: int, most: int) -> None:
    """`value` of --`option` is from `least` to `most`."""
    if not least <= value <= most:
        raise CommandError(f"--{option} is a whole number from {least:,} to {most:,}.")


def require_seconds(option: str, value: float, *, least: float, most: float) -> None:
    """`value` of --`option` is a number of seconds from `least` to `most` (never NaN)."""
    if not (math.isfinite(value) and least <= value <= most):
        raise CommandError(f"--{option} is a number of seconds from {least:g} to {most:g}.")
