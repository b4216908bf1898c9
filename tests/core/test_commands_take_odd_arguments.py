"""What an operator types wrongly on a management command's line gets one line saying what
is wrong (a CommandError), never a traceback, and changes nothing."""

from __future__ import annotations

from importlib import import_module
from io import StringIO

import pytest
from django.core.management import (
    CommandError,
    base,
    call_command,
    get_commands,
    load_command_class,
)

from accounts.models import Project
from apikeys.models import ApiKey
from core.commands import OperatorCommand
from scheduler.runner import Scheduler

# b"caf\xe9", typed in a Latin-1 terminal: Python reads the byte that is not UTF-8 as a
# lone surrogate (PEP 383), which no database column takes.
LATIN1 = b"caf\xe9".decode("utf-8", "surrogateescape")


def run(command: str, *argv: str) -> tuple[str, str]:
    """`command` with `argv` as the shell hands it over, through argparse."""
    out, err = StringIO(), StringIO()
    call_command(command, *argv, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["--name", LATIN1], "--name"),
        (["--name", "CI", "--permissions", LATIN1], "--permissions"),
    ],
)
def test_createapikey_refuses_bytes_that_are_not_utf8_naming_the_option(project, argv, option):
    with pytest.raises(CommandError, match=f"{option} is not UTF-8 text"):
        run("createapikey", "--project", project.slug, *argv)
    assert not ApiKey.objects.exists()


def test_createapikey_refuses_a_project_slug_that_is_not_utf8(project):
    with pytest.raises(CommandError, match="--project is not UTF-8 text"):
        run("createapikey", "--project", LATIN1, "--name", "CI")


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        ([LATIN1, "--owner", "ada@example.com"], "The name"),
        (["Billing", "--owner", LATIN1], "--owner"),
    ],
)
def test_createproject_refuses_bytes_that_are_not_utf8_naming_the_option(user, argv, option):
    with pytest.raises(CommandError, match=f"{option} is not UTF-8 text"):
        run("createproject", *argv)
    assert Project.objects.count() == 1  # only the project sign-up made


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Billing\nBot", "one line"),
        ("Billing\tBot", "one line"),
        ("\u202eBilling", "reverse the text"),
    ],
)
def test_createproject_holds_a_name_to_the_dashboards_rules(user, name, message):
    """The dashboard's form refuses these (a line break would reach mail subjects and
    split log lines); the command made the project with them."""
    with pytest.raises(CommandError, match=message):
        run("createproject", name, "--owner", "ada@example.com")
    assert Project.objects.count() == 1  # only the project sign-up made


def test_createproject_refuses_a_name_holding_a_token(user, project, make_key):
    _, secret = make_key(project)
    with pytest.raises(CommandError, match="looks like a Reminix token") as refused:
        run("createproject", f"CI {secret}", "--owner", "ada@example.com")
    assert secret not in str(refused.value)
    assert Project.objects.count() == 1


@pytest.mark.parametrize("size", ["-1", "0", "100001", str(10**20)])
def test_detect_suspicious_activity_refuses_a_batch_size_out_of_range(db, size):
    """-1 was a traceback from the ORM's slicing, 10**20 one from the database (bigint out
    of range), and 0 read nothing and said so, every minute, as if all were well."""
    with pytest.raises(CommandError, match="--batch-size is a whole number from 1 to 100,000"):
        run("detect_suspicious_activity", "--batch-size", size)


def test_detect_suspicious_activity_takes_a_batch_size_within_range(db):
    out, _ = run("detect_suspicious_activity", "--batch-size", "1")
    assert out.startswith("Read 0 calls")


@pytest.mark.parametrize("tick", ["inf", "nan", "1e308", "3601", "0.01", "-5"])
def test_run_scheduler_refuses_a_tick_it_cannot_wait_before_it_starts(db, monkeypatch, tick):
    """inf and 1e308 ran the jobs once, then failed in the wait (OverflowError from
    threading); NaN and -5 were taken as 0.05 without a word."""
    loops: list[float] = []
    monkeypatch.setattr(Scheduler, "loop", lambda self, tick: loops.append(tick))
    with pytest.raises(CommandError, match="--tick is a number of seconds from 0.05 to 3600"):
        run("run_scheduler", "--tick", tick)
    assert loops == []


def test_run_scheduler_loops_with_the_tick_it_was_given(db, monkeypatch):
    loops: list[float] = []
    monkeypatch.setattr(Scheduler, "loop", lambda self, tick: loops.append(tick))
    run("run_scheduler", "--tick", "0.5")
    assert loops == [0.5]


def test_ingest_usage_refuses_a_consumer_name_that_is_not_utf8(db, redis_store):
    """The name goes to Redis as the reader's name in the consumer group: the client
    failed to encode it, with a traceback, at the first read."""
    with pytest.raises(CommandError, match="--consumer is not UTF-8 text"):
        run("ingest_usage", "--once", "--consumer", LATIN1)


@pytest.mark.parametrize("consumer", ["", "   ", "host\nname", "host\tname", "\u200b"])
def test_ingest_usage_refuses_a_consumer_name_that_names_no_reader(db, redis_store, consumer):
    """Each was taken as the reader's name in the stream's consumer group: an empty name,
    or one that a list of the group's readers (XINFO CONSUMERS) shows blank or split."""
    with pytest.raises(CommandError, match="--consumer ") as refused:
        run("ingest_usage", "--once", "--consumer", consumer)
    assert len(str(refused.value).splitlines()) == 1


LONG = "x" * 10_000


@pytest.mark.parametrize(
    "argv",
    [
        ("createapikey", "--project", LONG, "--name", "CI"),
        ("createapikey", "--project", f"acme {LONG} billing", "--name", "CI"),
        ("createapikey", f"--project={LONG}", "--name", "CI"),
        ("createapikey", "--project", "{slug}", "--name", "CI", "--permissions", f"read,{LONG}"),
        ("createproject", "Billing", "--owner", f"{LONG}@example.com"),
        ("detect_suspicious_activity", "--batch-size", LONG),
        ("prune_client_tokens", LONG),
    ],
    ids=["slug", "slug-with-spaces", "slug-after-equals", "permissions", "owner", "int", "extra"],
)
def test_an_error_quotes_only_the_start_of_a_long_argument(user, project, argv):
    """A slug of 10,000 characters was quoted back whole, in the one line that cron mails
    and a deploy's log keeps: now its first 100 and how long it was."""
    argv = tuple(arg.replace("{slug}", project.slug) for arg in argv)
    with pytest.raises(CommandError) as refused:
        run(*argv)
    message = str(refused.value)
    assert len(message) < 400, message[:400]
    assert "x" * 101 not in message
    assert "characters)" in message
    assert not ApiKey.objects.exists()


def test_an_error_says_how_long_the_argument_it_cut_was(project):
    with pytest.raises(CommandError) as refused:
        run("createapikey", "--project", LONG, "--name", "CI")
    assert str(refused.value) == f"No project with the slug {'x' * 100}… (10,000 characters)."


def test_a_long_argument_is_cut_on_the_command_line_too(capsys, monkeypatch):
    monkeypatch.setattr(base.connections, "close_all", lambda: None)
    command = load_command_class(get_commands()["run_scheduler"], "run_scheduler")
    with pytest.raises(SystemExit):
        command.run_from_argv(["manage.py", "run_scheduler", "--tick", LONG])
    printed = capsys.readouterr().err
    assert "x" * 100 + "…" in printed and "x" * 101 not in printed


@pytest.mark.parametrize("before", [90, 95, 99, 105])
def test_a_token_where_a_long_argument_is_cut_leaves_nothing_of_its_secret(
    project, make_key, before
):
    """The cut is made after the token is redacted: cut first, a token that straddled it
    kept too few characters to be found as one (12), and those were its secret's."""
    _, secret = make_key(project)
    for slug in ("x" * before + secret + LONG, "x" * before + " " + secret + " " + LONG):
        with pytest.raises(CommandError) as refused:
            run("createapikey", "--project", slug, "--name", "CI")
        message = str(refused.value)
        readable = secret.removeprefix("reminix_sk_")
        assert not any(readable[i : i + 5] in message for i in range(len(readable) - 4)), message
    assert ApiKey.objects.count() == 1


def _secret_echo_cases(slug: str, secret: str) -> list[tuple[str, ...]]:
    """A token pasted into the wrong argument, as a deploy script that mixes up its
    variables does: each of these echoed it back, whole, in its one line of error."""
    return [
        ("createapikey", "--project", secret, "--name", "CI"),
        ("createapikey", "--project", slug, "--name", "CI", "--permissions", secret),
        ("createapikey", "--project", slug, "--name", "CI", "--expires-in-days", secret),
        ("createproject", "Billing", "--owner", secret),
        ("prune_usage", "--older-than", secret),
        ("ensure_usage_partitions", "--days", secret),
        ("detect_suspicious_activity", "--batch-size", secret),
        ("run_scheduler", "--once", "--tick", secret),
        ("prune_client_tokens", secret),
    ]


def test_a_token_given_as_an_argument_is_not_echoed_in_the_error(project, make_key):
    """stderr is what cron mails and a deploy's log keeps: the contract's "never written
    to a log" holds there too. The token's prefix stays, to say what was pasted."""
    _, secret = make_key(project)
    for argv in _secret_echo_cases(project.slug, secret):
        with pytest.raises(CommandError) as refused:
            run(*argv)
        assert secret[12:] not in str(refused.value), argv
        assert "reminix_sk_" in str(refused.value), argv
    assert ApiKey.objects.count() == 1


def test_a_token_given_on_the_command_line_is_not_echoed_in_the_usage_error(
    project, make_key, capsys, monkeypatch
):
    """From a shell, argparse prints its own error (with the usage) and exits 2, and a
    CommandError is printed by run_from_argv and exits 1."""
    monkeypatch.setattr(base.connections, "close_all", lambda: None)  # the test's transaction
    _, secret = make_key(project)
    apps = get_commands()
    for argv in _secret_echo_cases(project.slug, secret):
        command = load_command_class(apps[argv[0]], argv[0])
        with pytest.raises(SystemExit):
            command.run_from_argv(["manage.py", *argv])
        printed = capsys.readouterr()
        assert secret[12:] not in printed.out + printed.err, argv
        assert "reminix_sk_" in printed.err, argv
    assert ApiKey.objects.count() == 1


def test_every_command_of_ours_keeps_tokens_out_of_its_errors():
    """A new command is an OperatorCommand too, or its errors may echo a token."""
    ours = {
        name: app
        for name, app in get_commands().items()
        if "site-packages" not in str(import_module(app).__file__)
    }
    assert {"createapikey", "ingest_usage", "run_scheduler"} <= ours.keys()
    for name, app in ours.items():
        assert isinstance(load_command_class(app, name), OperatorCommand), name


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["createproject", "Billing", "--owner", "ada@example.com\x00"], "--owner"),
        (["createapikey", "--project", "adas-project\x00", "--name", "CI"], "--project"),
        (["ingest_usage", "--once", "--consumer", "host\x00"], "--consumer"),
    ],
)
def test_a_nul_character_in_an_argument_is_refused_naming_the_option(
    project, redis_store, argv, option
):
    """A shell cannot pass one, but a script's call_command can: PostgreSQL's driver
    refused it in the lookup with a traceback (DataError: text fields cannot contain NUL),
    and SQLite looked it up and said there was no such user."""
    with pytest.raises(CommandError, match=f"{option} holds a NUL character"):
        run(*argv)
    assert Project.objects.count() == 1


@pytest.mark.parametrize("breaks", ["\n", "\r\n", "\r", "\x85", "\u2028"])
def test_a_line_break_in_an_argument_is_not_echoed_as_one(user, project, breaks):
    """stderr is read a line at a time (cron's mail, journald, a deploy's log): the owner
    an operator pasted with its mail header after it, or a slug with a forged line, made
    the error two lines, the second one the argument's to write."""
    forged = f"{breaks}CommandError: the database was wiped"
    for argv in (
        ("createproject", "Billing", "--owner", f"ada@example.com{forged}"),
        ("createapikey", "--project", f"{project.slug}{forged}", "--name", "CI"),
        ("createapikey", "--project", project.slug, "--name", "CI", "--permissions", forged),
        ("prune_client_tokens", forged),
    ):
        with pytest.raises(CommandError) as refused:
            run(*argv)
        assert len(str(refused.value).splitlines()) == 1, argv
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("cut", ["\n", "\r\n", " ", "\t"])
def test_a_token_cut_by_a_line_break_or_a_space_is_not_echoed_in_the_error(project, make_key, cut):
    """A token copied from a terminal that wrapped it, or from a page, arrives with a line
    break or a space inside: redact_secrets wants 12 characters after the prefix in one
    piece, so "reminix_sk_Ab3d⏎Ef6h…" was printed but for its break ("%0A"), all but four
    of its characters on stderr. The dashboard reads such a paste as the token
    (core.htmx), and so is it cut here."""
    _, secret = make_key(project)
    pasted = secret[:15] + cut + secret[15:]
    for argv in (
        ("createapikey", "--project", pasted, "--name", "CI"),
        ("prune_client_tokens", pasted),
    ):
        with pytest.raises(CommandError) as refused:
            run(*argv)
        assert secret[15:] not in str(refused.value), argv
        assert "reminix_sk_" in str(refused.value), argv
        assert len(str(refused.value).splitlines()) == 1, argv


@pytest.mark.parametrize("at", [4, 8, 10])
@pytest.mark.parametrize("cut", ["\n", "\r\n", " "])
def test_a_token_whose_prefix_a_line_break_cuts_is_not_echoed_in_the_error(
    project, make_key, at, cut
):
    """A terminal wraps where its width ends, inside the prefix as anywhere: with the break
    in "remi⏎nix_sk_…" the 36 characters after it were printed whole, as no prefix was
    found to cut after."""
    _, secret = make_key(project)
    pasted = secret[:at] + cut + secret[at:]
    with pytest.raises(CommandError) as refused:
        run("createapikey", "--project", pasted, "--name", "CI")
    message = str(refused.value)
    assert secret[11:] not in message and secret[20:30] not in message, message
    assert len(message.splitlines()) == 1


@pytest.mark.parametrize(
    "escaped",
    [
        lambda s: s.replace("_", "%5F"),  # reminix%5Fsk%5F…: a URL's spelling
        lambda s: s.replace("_", "%255F"),  # escaped twice
        lambda s: "%72" + s[1:],  # the prefix's first letter
    ],
)
def test_a_percent_escaped_token_is_not_echoed_in_the_error(project, make_key, escaped):
    """A token copied out of a URL arrives escaped ("reminix%5Fsk%5F…"), a working token to
    whoever decodes it: the patterns saw no prefix in it, and the error printed it whole."""
    _, secret = make_key(project)
    pasted = escaped(secret)
    for argv in (
        ("createapikey", "--project", pasted, "--name", "CI"),
        ("prune_client_tokens", pasted),
    ):
        with pytest.raises(CommandError) as refused:
            run(*argv)
        message = str(refused.value)
        assert secret[12:] not in message and secret[20:30] not in message, (argv, message)
        assert len(message.splitlines()) == 1, argv


@pytest.mark.parametrize("digits", ["٣", "３", "߃", "1٣"])
@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["detect_suspicious_activity", "--batch-size"], "--batch-size"),
        (["ensure_usage_partitions", "--days"], "--days"),
        (
            ["createapikey", "--project", "adas-project", "--name", "CI", "--expires-in-days"],
            "--expires-in-days",
        ),
        (["run_scheduler", "--tick"], "--tick"),
    ],
)
def test_a_number_in_another_scripts_digits_is_refused_naming_the_option(
    project, monkeypatch, argv, option, digits
):
    """Python's int() and float() read every script's decimal digits: `--days ٣` (Arabic-
    Indic three, as a right-to-left keyboard types it) ran as 3, `--expires-in-days ３`
    (full-width, from an East Asian input method) made a key that ends in 3 days, and
    neither said so. An operator who typed something other than 0-9 is told, and nothing
    runs."""
    monkeypatch.setattr(Scheduler, "loop", lambda self, tick: pytest.fail("it ran"))
    with pytest.raises(CommandError, match=f"argument {option}: .* digits 0-9"):
        run(*argv, digits)
    assert ApiKey.objects.count() == 0


def test_every_number_a_command_of_ours_takes_is_read_in_the_digits_0_to_9():
    """A new numeric option takes core.commands' whole_number or seconds, not int or
    float, which read other scripts' digits as numbers."""
    ours = {
        name: app
        for name, app in get_commands().items()
        if "site-packages" not in str(import_module(app).__file__)
    }
    djangos = {action.dest for action in base.BaseCommand().create_parser("", "")._actions}
    for name, app in ours.items():
        parser = load_command_class(app, name).create_parser("manage.py", name)
        own = [action for action in parser._actions if action.dest not in djangos]
        assert not [action.dest for action in own if action.type in (int, float)], name
