"""No token reaches a log line: the dev server's request lines (query strings included)
and every other logger go through a handler that cuts tokens to their prefix."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from core.redact import redact_tokens

TOKEN = "reminix_sk_" + "A1b2" * 9


def test_a_token_keeps_its_prefix_and_loses_the_rest():
    assert redact_tokens(f"GET /v1/agents?key={TOKEN} HTTP/1.1") == (
        "GET /v1/agents?key=reminix_sk_[redacted] HTTP/1.1"
    )
    assert redact_tokens("REMINIX_PAT_abc and reminix_ct_x") == (
        "REMINIX_PAT_[redacted] and reminix_ct_[redacted]"
    )


@pytest.mark.parametrize("logger_name", ["django.server", "django.request", "api.endpoint", ""])
def test_the_configured_handlers_redact_tokens_in_arguments_and_messages(logger_name):
    logger = logging.getLogger(logger_name)
    # Ours, by the name settings.LOGGING gives it (pytest adds handlers of its own to root).
    handlers = [h for h in logger.handlers or logging.getLogger().handlers if h.name == "console"]
    assert handlers, "the logger writes through the console handler"
    for handler in handlers:
        assert isinstance(handler, logging.StreamHandler)
        stream = io.StringIO()
        previous = handler.setStream(stream)
        try:
            # As the dev server logs a request line: the path is an argument.
            handler.handle(
                logger.makeRecord(
                    logger_name, logging.INFO, __file__, 1, '"%s" %s %s',
                    (f"GET /v1/agents?token={TOKEN} HTTP/1.1", 200, 12), None,
                )
            )  # fmt: skip
            handler.handle(
                logger.makeRecord(
                    logger_name, logging.ERROR, __file__, 1, f"pasted {TOKEN}", (), None
                )
            )
        finally:
            handler.setStream(previous)
        written = stream.getvalue()
        assert "A1b2" not in written
        assert written.count("reminix_sk_[redacted]") == 2


def test_a_token_in_an_exceptions_message_is_redacted_in_its_traceback():
    logger = logging.getLogger("api.endpoint")
    handlers = [h for h in logger.handlers or logging.getLogger().handlers if h.name == "console"]
    assert handlers
    for handler in handlers:
        stream = io.StringIO()
        previous = handler.setStream(stream)
        try:
            try:
                raise ValueError(f"could not parse {TOKEN}")
            except ValueError:
                handler.handle(
                    logger.makeRecord(
                        "api.endpoint", logging.ERROR, __file__, 1, "failed", (),
                        sys.exc_info(),
                    )
                )  # fmt: skip
        finally:
            handler.setStream(previous)
        written = stream.getvalue()
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
