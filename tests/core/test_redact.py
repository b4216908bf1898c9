"""No token reaches a log line: the dev server's request lines (query strings included)
and every other logger go through a handler that cuts tokens to their prefix."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable

import pytest

from apikeys.tokens import TokenKind, token_generate
from core.redact import RedactTokens, redact_held_tokens, redact_tokens, redact_tokens_escaped

TOKEN = "reminix_sk_" + "A1b2" * 9


def console_output(logger_name: str, write: Callable[[logging.Handler, logging.Logger], None]):
    """What each console handler `logger_name` writes through (settings.LOGGING's, by the
    name it gives it: pytest adds handlers of its own to root) wrote while `write` ran."""
    logger = logging.getLogger(logger_name)
    handlers = [h for h in logger.handlers or logging.getLogger().handlers if h.name == "console"]
    assert handlers, "the logger writes through the console handler"
    written = []
    for handler in handlers:
        assert isinstance(handler, logging.StreamHandler)
        stream = io.StringIO()
        previous = handler.setStream(stream)
        try:
            write(handler, logger)
        finally:
            handler.setStream(previous)
        written.append(stream.getvalue())
    return written


def test_a_token_keeps_its_prefix_and_loses_the_rest():
    assert redact_tokens(f"GET /v1/agents?key={TOKEN} HTTP/1.1") == (
        "GET /v1/agents?key=reminix_sk_[redacted] HTTP/1.1"
    )
    assert redact_tokens("REMINIX_PAT_abc and reminix_ct_x") == (
        "REMINIX_PAT_[redacted] and reminix_ct_[redacted]"
    )


@pytest.mark.parametrize("logger_name", ["django.server", "django.request", "api.endpoint", ""])
def test_the_configured_handlers_redact_tokens_in_arguments_and_messages(logger_name):
    def write(handler, logger):
        # As the dev server logs a request line: the path is an argument.
        handler.handle(
            logger.makeRecord(
                logger_name, logging.INFO, __file__, 1, '"%s" %s %s',
                (f"GET /v1/agents?token={TOKEN} HTTP/1.1", 200, 12), None,
            )
        )  # fmt: skip
        handler.handle(
            logger.makeRecord(logger_name, logging.ERROR, __file__, 1, f"pasted {TOKEN}", (), None)
        )

    for written in console_output(logger_name, write):
        assert "A1b2" not in written
        assert written.count("reminix_sk_[redacted]") == 2


@pytest.mark.parametrize("logger_name", ["scheduler.runner", "api.endpoint", ""])
def test_a_logging_call_whose_arguments_do_not_fit_its_format_still_logs_and_never_raises(
    logger_name,
):
    """The console's filters read each record's message, which formats its arguments: a
    call with one argument too few raised TypeError from inside the filter, into the code
    that logged (a scheduled job for every tenant, a request), where logging itself would
    have written its own complaint and gone on. It is logged, format and arguments, once."""

    def write(handler, logger):
        handler.handle(
            logger.makeRecord(
                logger_name, logging.WARNING, __file__, 1, "job %s failed for %s",
                (f"pasted {TOKEN}\nforged",), None,
            )
        )  # fmt: skip

    for written in console_output(logger_name, write):
        [line] = written.splitlines()
        assert "job %s failed for %s" in line and "reminix_sk_[redacted]" in line
        assert "A1b2" not in line


@pytest.mark.parametrize("logger_name", ["core.middleware", "django.request", ""])
def test_a_line_break_a_client_sent_cannot_write_a_log_line_of_its_own(logger_name):
    """The busy page's warning names the request's path, which Django decodes: a path
    sent with %0A wrote a second line, dated and levelled as the client chose, into the
    log. The message of every record is one line; its traceback, if any, follows."""
    forged = "/projects/x\n2026-12-06 06:00:00,000 CRITICAL core.forged FORGED\r/"

    def write(handler, logger):
        handler.handle(
            logger.makeRecord(
                logger_name, logging.WARNING, __file__, 1,
                "%s %s: the database could not answer (%s)",
                ("GET", forged, "OperationalError"), None,
            )
        )  # fmt: skip

    for written in console_output(logger_name, write):
        [line] = written.splitlines()
        assert "x%0A2026-12-06 06:00:00,000 CRITICAL core.forged FORGED%0D/" in line


@pytest.mark.parametrize("logger_name", ["scheduler.runner", "django.request", ""])
def test_a_line_break_in_an_exceptions_message_cannot_write_a_log_line_of_its_own(logger_name):
    """The record's message was kept to one line, but its traceback followed on lines of
    its own, and it repeats the exception's message: a value a client sent, quoted in an
    exception with its line break (a database's refusal quotes the value it refused),
    wrote a line dated and levelled as the client chose. The whole record is one line,
    traceback and stack included; the record itself keeps its exception for any other
    handler."""
    forged = "bad value\n2026-12-06 06:00:00,000 CRITICAL core.forged FORGED"
    records = []

    def write(handler, logger):
        try:
            raise ValueError(forged)
        except ValueError:
            record = logger.makeRecord(
                logger_name, logging.ERROR, __file__, 1, "Scheduled job %s failed",
                ("demo",), sys.exc_info(), sinfo="Stack (most recent call last):\n  here",
            )  # fmt: skip
            records.append(record)
            handler.handle(record)

    for written, record in zip(console_output(logger_name, write), records, strict=True):
        [line] = written.splitlines()
        assert line.endswith("Stack (most recent call last):%0A  here")
        assert "Scheduled job demo failed%0ATraceback (most recent call last):%0A" in line
        assert "ValueError: bad value%0A2026-12-06 06:00:00,000 CRITICAL core.forged" in line
        assert record.exc_info is not None and record.stack_info is not None


@pytest.mark.parametrize(
    ("breaker", "escaped"), [("\x85", "%85"), ("\u2028", "%E2%80%A8"), ("\u2029", "%E2%80%A9")]
)
def test_a_unicode_line_break_a_client_sent_cannot_write_a_log_line_of_its_own(breaker, escaped):
    """NEL and Unicode's line and paragraph separators are line breaks too: str.splitlines()
    splits at them (as this suite reads a log, and as a log shipper in Python would), and
    a terminal may move to a new line at NEL. A path sent with %C2%85 or %E2%80%A8 went
    past the escape of ASCII's control characters and wrote a line of the client's own."""
    handler = next(h for h in logging.getLogger().handlers if h.name == "console")
    forged = f"/projects/x{breaker}2026-12-06 06:00:00,000 CRITICAL core.forged FORGED"
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        try:
            raise ValueError(forged)
        except ValueError:
            logging.getLogger("core.middleware").exception("GET %s failed", forged)
    finally:
        handler.setStream(previous)
    [line] = stream.getvalue().splitlines()
    assert f"GET /projects/x{escaped}2026-12-06 06:00:00,000 CRITICAL core.forged" in line
    assert f"ValueError: /projects/x{escaped}2026-12-06" in line


def test_a_token_in_an_exceptions_message_is_redacted_in_its_traceback():
    def write(handler, logger):
        try:
            raise ValueError(f"could not parse {TOKEN}")
        except ValueError:
            handler.handle(
                logger.makeRecord(
                    "api.endpoint", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
                )
            )

    for written in console_output("api.endpoint", write):
        assert "Traceback" in written and "ValueError: could not parse" in written
        assert "A1b2" not in written and "reminix_sk_[redacted]" in written


def test_the_dashboards_one_time_links_lose_their_tokens_too():
    """An email-change confirmation or password-reset link is as good as a password
    while it lasts; django.security logs the path of a POST its CSRF check refused."""
    verify = "/account/verify/eyJ1IjoxLCJ0byI6Im5ld0BleGFtcGxlLmNvbSJ9:1xZbpa:JWr6bTq/"
    reset = "/account/password/reset/MQ/cz3kq1-0f6b2a9e1f2e3d4c5b6a7980/"
    line = f"Forbidden (CSRF cookie not set.): {verify} and {reset}"
    assert redact_tokens(line) == (
        "Forbidden (CSRF cookie not set.): /account/verify/[redacted]/ and "
        "/account/password/reset/MQ/[redacted]/"
    )
    # Pages that hold no token stay as they are.
    for path in (
        "/account/verify/again/",
        "/account/password/reset/done/",
        "/account/password/reset/MQ/set-password/",
    ):
        assert redact_tokens(path) == path


# gunicorn's default format, and the atoms a deployment's own format might name besides.
ACCESS_FORMAT = (
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(U)s %(q)s '
    "%({x-api-key}i)s %({HTTP_X_API_KEY}e)s"
)


def _access_line(raw_uri: str, *, headers: dict[str, str]) -> str:
    """What gunicorn.conf.py's access logger writes, in ACCESS_FORMAT, for a request to
    `raw_uri` as the client sent it (the file's name is no module's: loaded by path)."""
    from datetime import timedelta
    from importlib.util import module_from_spec, spec_from_file_location
    from pathlib import Path
    from types import SimpleNamespace
    from urllib.parse import unquote

    from gunicorn.config import Config

    spec = spec_from_file_location("gunicorn_conf", Path(__file__).parents[2] / "gunicorn.conf.py")
    assert spec is not None and spec.loader is not None
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    config = Config()
    config.set("accesslog", "-")
    config.set("access_log_format", ACCESS_FORMAT)
    logger = module.TokenRedactingLogger(config)
    path, _, query = raw_uri.partition("?")
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": raw_uri,
        "PATH_INFO": unquote(path),  # as gunicorn decodes it
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "203.0.113.9",
        **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()},
    }
    request = SimpleNamespace(headers=[(name.upper(), value) for name, value in headers.items()])
    response = SimpleNamespace(status="200 OK", headers=[], sent=2)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.access_log.addHandler(handler)
    try:
        logger.access(response, request, environ, timedelta(milliseconds=3))
    finally:
        logger.access_log.removeHandler(handler)
    return stream.getvalue()


@pytest.mark.parametrize(
    "raw_uri",
    [
        # Percent-escapes hide a token from the patterns in the request line as sent
        # (gunicorn's "r", its default format's), not in the path Django routes.
        f"/v1/agents/{TOKEN.replace('_', '%5F')}",
        f"/v1/agents?key={TOKEN.replace('_', '%5f')}",
        f"/v1/agents/{TOKEN.replace('_', '%255F')}",
        # An escape anywhere in the token, not only in its prefix: the part after it too.
        f"/v1/agents/{TOKEN[:15]}%41{TOKEN[15:]}/invoke",
        f"/v1/agents/{TOKEN[:15]}%2541{TOKEN[15:]}/invoke",
        f"/v1/agents/{TOKEN[:15].replace('_', '%5F')}%62{TOKEN[15:]}/invoke",
        "/account%2Fverify%2FeyJ1IjoxLCJ0byI6Im5ld0BleGFtcGxlLmNvbSJ9:1xZbpa:JWr6bTq/",
        "/account/password/reset/MQ%2Fcz3kq1-0f6b2a9e1f2e3d4c5b6a7980/",
    ],
)
def test_the_access_log_redacts_a_token_hidden_by_percent_escapes(raw_uri):
    line = _access_line(raw_uri, headers={"User-Agent": "curl/8"})
    assert "A1b2" not in line
    assert "JWr6bTq" not in line and "0f6b2a9e1f2e3d4c5b6a7980" not in line


@pytest.mark.parametrize("space", ["+", "%20"])
@pytest.mark.parametrize("at", [11, 15, 40])
def test_the_access_log_redacts_a_token_pasted_into_a_filter_with_a_space_inside(space, at):
    """A dashboard filter takes a token pasted with a space in it as the token it is (the
    page is opened again without it, core.htmx): a form sends the space as "+", htmx as
    "%20", and the request line, the query and the next page's Referer hold it so."""
    pasted = TOKEN[:at] + space + TOKEN[at:]
    uri = f"/projects/p/usage/calls/?client_token={pasted}&status=401"
    line = _access_line(uri, headers={"Referer": f"https://dash.example{uri}"})
    assert "A1b2" not in line
    # Cut once, to its prefix (not "[redacted][redacted]"), and the rest of the query kept.
    assert line.count("client_token=reminix_sk_[redacted]&status=401") == 3
    # A token's length at most: what follows it is the log's own.
    assert redact_tokens_escaped(f"GET /?q={pasted}+more HTTP/1.1").endswith("+more HTTP/1.1")


WEBHOOK_SECRET = "whsec_" + "Q-9_zR" * 7 + "A"  # token_urlsafe(32): 43 characters


@pytest.mark.parametrize("space", ["+", "%20"])
@pytest.mark.parametrize("at", [6, 10, 40])
def test_the_access_log_redacts_a_webhook_secret_pasted_with_a_space_inside(space, at):
    """As a token is: the dashboard reads a whsec_ pasted with a copy's space as the secret
    it is (core.htmx sends the browser on without it), and the request line that brought
    it, its query and the next page's Referer were cut at the space, the rest kept (34 of
    its 43 characters, with the space after its 4th)."""
    pasted = WEBHOOK_SECRET[:at] + space + WEBHOOK_SECRET[at:]
    uri = f"/projects/p/settings/webhooks/?q={pasted}&page=2"
    line = _access_line(uri, headers={"Referer": f"https://dash.example{uri}"})
    assert "Q-9_zR" not in line and "zRA" not in line
    assert line.count("q=whsec_[redacted]&page=2") == 3
    assert redact_tokens_escaped(f"GET /?q={pasted}&more HTTP/1.1").endswith("&more HTTP/1.1")


def test_the_access_log_redacts_a_key_sent_as_a_basic_auth_user_name_or_in_any_header():
    """`curl -u reminix_sk_…:` (the way some APIs take keys) is refused by ours, and
    gunicorn's "u" atom, in its default format, decodes the user name."""
    import base64

    basic = "Basic " + base64.b64encode(f"{TOKEN}:".encode()).decode()
    line = _access_line(
        "/v1/agents", headers={"Authorization": basic, "X-Api-Key": TOKEN, "User-Agent": "curl/8"}
    )
    assert "A1b2" not in line
    assert "reminix_sk_[redacted]" in line


def test_a_percent_escape_decoded_to_find_a_token_cannot_write_a_second_log_line():
    line = _access_line(f"/v1/agents/{TOKEN.replace('_', '%5F')}%0A127.0.0.1%20-%20-", headers={})
    assert "A1b2" not in line
    assert line.count("\n") == 1 and line.endswith("\n") and "\r" not in line


def test_an_escape_inside_a_token_cannot_write_a_second_log_line_either():
    line = _access_line(f"/v1/agents/{TOKEN[:15]}%41{TOKEN[15:]}%0D%0A127.0.0.1%00", headers={})
    assert "A1b2" not in line
    assert line.count("\n") == 1 and line.endswith("\n") and "\r" not in line
    assert "\x00" not in line


def test_text_with_an_escape_and_no_token_is_kept_as_sent():
    assert redact_tokens_escaped("/v1/agents/caf%C3%A9%0A/invoke?q=100%") == (
        "/v1/agents/caf%C3%A9%0A/invoke?q=100%"
    )


def test_the_dev_servers_request_line_as_sent_loses_an_escaped_token():
    line = f"GET /v1/agents?key={TOKEN.replace('_', '%5F')} HTTP/1.1"
    record = logging.LogRecord(
        "django.server", logging.INFO, __file__, 1, '"%s" %s', (line, 401), None
    )
    RedactTokens().filter(record)
    assert "A1b2" not in record.getMessage() and "reminix_sk_[redacted]" in record.getMessage()


def _gunicorn_logger(**settings: str):
    """gunicorn.conf.py's logger class as gunicorn makes it (loaded by path, as above)."""
    from importlib.util import module_from_spec, spec_from_file_location
    from pathlib import Path

    from gunicorn.config import Config

    spec = spec_from_file_location("gunicorn_conf", Path(__file__).parents[2] / "gunicorn.conf.py")
    assert spec is not None and spec.loader is not None
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    config = Config()
    for name, value in settings.items():
        config.set(name, value)
    return module.TokenRedactingLogger(config)


def _error_log_of(send) -> str:
    """What gunicorn's error log (gunicorn.error) writes while `send(logger)` runs."""
    logger = _gunicorn_logger(errorlog="-", loglevel="debug")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.error_log.addHandler(handler)
    try:
        send(logger)
    finally:
        logger.error_log.removeHandler(handler)
    return stream.getvalue()


def _refusals():
    from gunicorn.http import errors

    return [
        # A key pasted into a path with one character that is not ASCII: the whole line.
        errors.InvalidRequestLine(f"GET /v1/agents/{TOKEN}\xe9 HTTP/1.1"),
        # `Authorization Bearer …` with its colon forgotten: the whole header line.
        errors.InvalidHeader(f"Authorization Bearer {TOKEN}"),
        errors.ExpectationFailed(TOKEN),
        errors.UnsupportedTransferCoding(TOKEN),
        errors.InvalidRequestMethod(f"G{TOKEN}"),
    ]


@pytest.mark.parametrize("error", _refusals(), ids=lambda error: type(error).__name__)
def test_a_request_gunicorn_refuses_does_not_write_its_token_to_the_error_log(error):
    """gunicorn answers 400 itself to a request it cannot parse, and logs why at WARNING
    (its default level logs it) with what the client sent: the request line, a header."""
    from types import SimpleNamespace

    from gunicorn.workers.base import Worker

    def refuse(logger) -> None:
        worker = SimpleNamespace(log=logger, cfg=logger.cfg)
        # As the worker does; no client to write the 400 to, which it logs and goes on.
        Worker.handle_error(worker, None, None, ("203.0.113.9", 4711), error)

    written = _error_log_of(refuse)
    assert "Invalid request from ip=203.0.113.9" in written
    assert "A1b2" not in written and "reminix_sk_[redacted]" in written


def test_gunicorns_debug_line_of_each_request_does_not_write_a_token_in_its_path():
    """At --log-level debug every request's method and path, as sent, is logged."""
    written = _error_log_of(
        lambda logger: logger.debug("%s %s", "GET", f"/v1/api-keys/{TOKEN.replace('_', '%5F')}")
    )
    assert "A1b2" not in written and "reminix_sk_[redacted]" in written


def test_gunicorns_error_log_writes_a_traceback_and_a_clients_line_break_on_one_line():
    """gunicorn's error log is the process's stderr beside ours, but it went through none of
    our console's filters: a request's exception ("Error handling request", an exception
    in a worker or a hook) wrote its traceback over many lines, repeating the exception's
    message, which may quote what a client sent, line breaks and all; a log shipper took
    each line for a record of its own, dated and levelled as the client chose. Each record
    is one line, as the console's are, its traceback joined with %0A."""
    forged = "bad value\n2026-12-06 06:00:00,000 CRITICAL core.forged FORGED\u2028x"

    def fail(logger) -> None:
        try:
            raise ValueError(forged)
        except ValueError:
            logger.exception("Error handling request %s", "/v1/agents/x\x85y")
        logger.warning("Exception during worker exit:\n%s", "Traceback (most recent call last)")

    written = _error_log_of(fail)
    first, second = written.splitlines()
    assert "Error handling request /v1/agents/x%85y%0ATraceback (most recent call last):" in first
    assert "ValueError: bad value%0A2026-12-06 06:00:00,000 CRITICAL core.forged" in first
    assert first.endswith("FORGED%E2%80%A8x")
    assert second == "Exception during worker exit:%0ATraceback (most recent call last)"


def test_gunicorns_error_log_redacts_a_token_in_a_traceback_before_it_joins_its_lines():
    def fail(logger) -> None:
        try:
            raise ValueError(f"GET /v1/agents/{TOKEN}")
        except ValueError:
            logger.exception("Error handling request")

    [line] = _error_log_of(fail).splitlines()
    assert "A1b2" not in line and "ValueError: GET /v1/agents/reminix_sk_[redacted]" in line


def test_a_webhook_signing_secret_is_cut_like_a_token():
    """A `whsec_…` signs every delivery to an endpoint; pasted into a path, a user agent
    or a key's notes it must not be kept, as a token is not."""
    from core.redact import holds_secret, redact_secrets

    secret = "whsec_" + "Q-9_zR" * 7
    line = f"GET /v1/agents/{secret}/invoke?s={secret.replace('_', '%5F')} HTTP/1.1"
    assert "Q-9_zR" not in redact_tokens(line) and "whsec_[redacted]" in redact_tokens(line)
    record = logging.LogRecord("django.server", logging.INFO, __file__, 1, '"%s"', (line,), None)
    RedactTokens().filter(record)
    assert "Q-9_zR" not in record.getMessage()
    assert holds_secret(f"signs with {secret}")
    assert "Q-9_zR" not in redact_secrets(secret)
    # Its hint, as the endpoint list shows it, is no secret.
    assert not holds_secret("whsec_Q-9_…") and redact_secrets("whsec_Q-9_…") == "whsec_Q-9_…"


@pytest.mark.parametrize(
    "text",
    [
        "/v1/agents/REMINIX_SK_abcdefgh/invoke",
        "curl/8 Reminix_Pat_abcdefgh",
        "hook whsec_abcdefghijklmnop",
        "/account/verify/abcdefgh/",
        "/v1/agents/ｒeminix_sk_abcdefgh/invoke",  # a fullwidth r
        "ua reminix\u200b_sk_abcdefgh",  # a zero-width space inside
        "/v1/agents/reminix%5Fsk%5Fabcdefgh/invoke",
    ],
)
def test_text_that_holds_any_patterns_start_however_spelt_takes_the_patterns(text):
    # redact_tokens_escaped returns text at once when no pattern can match it: never
    # text with a token in another case, disguised, or escaped.
    assert "abcdefgh" not in redact_tokens_escaped(text)


def test_a_kept_text_loses_every_token_the_name_checks_find_and_keeps_its_words():
    """redact_held_tokens, for text kept before it was checked (core.stored_secrets): whole
    and spaced tokens keep their prefix, runs of token rests go one by one, and words after
    a bare prefix stay, as the checks let them through."""
    rests = [
        str(token_generate(kind)).split("_", 2)[2]
        for kind in (TokenKind.API_KEY, TokenKind.CLIENT_TOKEN)
    ]
    words = "Leaked: the reminix_sk_ key was pasted in our Slack channel"
    assert redact_held_tokens(f"x{rests[0]}{rests[1]}y") == "x[redacted][redacted]y"
    assert redact_held_tokens(f"{TOKEN} and {rests[1]}") == "reminix_sk_[redacted] and [redacted]"
    assert redact_held_tokens(f"reminix_sk_ {TOKEN[11:23]} {TOKEN[23:]}") == "reminix_sk_[redacted]"
    assert redact_held_tokens(words) == words
    mistyped = rests[0][:-1] + ("y" if rests[0].endswith("x") else "x")  # its checksum fails
    assert redact_held_tokens(mistyped) == mistyped
