"""Gunicorn settings for `make serve` (and so for `make bench`).

Gunicorn reads ./gunicorn.conf.py from the directory it starts in, which for `make serve`
is the repository root. Flags on the command line (the Makefile's --bind, --workers and
access log) win over the values here; these are the defaults for a bare `gunicorn
reminix_dashboard.wsgi:application`.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import os
import secrets
import socket
import tempfile
from collections.abc import Callable
from typing import Any

from gunicorn import util
from gunicorn.glogging import Logger, SafeAtoms

from core.redact import (
    OneLine,
    RedactTokens,
    controls_escaped,
    message_of,
    redact_tokens_escaped,
)

# As make serve binds (BIND_HOST, PORT): 0.0.0.0 in a container, or none reaches it. Set
# but empty (BIND_HOST= in an env file) is not set: gunicorn reads '' as every interface.
_host = os.environ.get("BIND_HOST", "").strip("[]") or "127.0.0.1"
bind = f"{f'[{_host}]' if ':' in _host else _host}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# One control socket per port: two `make serve` on one host would otherwise share the
# default path, and stopping one would delete the other's.
control_socket = os.path.join(
    tempfile.gettempdir(), f"reminix-gunicorn-{os.environ.get('PORT', '8000')}.ctl"
)


def _statement_seconds() -> int:
    """DB_STATEMENT_TIMEOUT as the settings read it (0: off); a value they refuse stops
    the workers with its own line (post_fork below), so any number serves here."""
    try:
        return max(int(os.environ.get("DB_STATEMENT_TIMEOUT", "30")), 0)
    except ValueError:
        return 30


# A worker silent this long is killed. gunicorn's default, 30 s, is the statement timeout's
# default too: a request whose statement reached it was killed as the statement was
# cancelled, so its client got a reset connection (the proxy's 502) and not the 503 with
# Retry-After that the app answers; 15 s more lets the answer go out first.
timeout = (_statement_seconds() or 30) + 15

# Which peers may say the scheme is https is the app's to decide (TRUSTED_PROXIES, core/
# middleware.py ForwardedProtoMiddleware). gunicorn's own default believes X-Forwarded-Proto,
# X-Forwarded-Ssl and X-Forwarded-Protocol from 127.0.0.1 and sets the scheme itself, which
# Django then reads when the app has dropped the header: any process on the host could send
# a token in clear unrefused. Nobody, here; and none of gunicorn's own forwarded headers.
forwarded_allow_ips = ""
secure_scheme_headers: dict[str, str] = {}


# The access log's atoms that the server writes: every other one holds what a client
# sent (the request line as sent, escapes and all; the path; the query; the referrer; the
# user agent; the user name gunicorn decodes from 'Authorization: Basic', where `curl -u
# reminix_sk_…:` puts a key; any header or environ variable a format names).
_SERVER_ATOMS = frozenset("hltsbBTDMLp")
# The request id of the refusal a worker is answering (_refusals_with_a_request_id), for
# its answer and for the error log's line about it alike.
_refusal_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("refusal_id", default=None)


class _RefusalRequestId(logging.Filter):
    """What gunicorn logs while it refuses a request ("Invalid request from ip=…", or an
    "Error handling request" answered 500) starts with that answer's request id, as the
    app's own lines do ("API request req_…: …"): the id a customer reports finds the line."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = _refusal_id.get()
        if request_id is not None:
            record.msg, record.args = f"Request {request_id}: {message_of(record)}", None
        return True


# The error log's filters: the request id of a refusal, then the console's two (settings'
# LOGGING), in the console's order: one of each, so that a setup() run again (a reload)
# adds nothing.
_REFUSAL_REQUEST_ID = _RefusalRequestId()
_REDACT_TOKENS = RedactTokens()
_ONE_LINE = OneLine()


class _RedactedAtoms(SafeAtoms):
    """The atoms as the access log's format reads them, each a client wrote redacted of
    tokens: only those the format names pay for it."""

    def __getitem__(self, name: str) -> Any:
        value = super().__getitem__(name)
        if isinstance(value, str) and name not in _SERVER_ATOMS:
            # Escaped again: a control character gunicorn decoded in the path ("U": %0A is
            # a line break) would let a client write a log line of its own.
            value = controls_escaped(redact_tokens_escaped(value))
        return value


class TokenRedactingLogger(Logger):
    """The access log with any token a client sent cut down to its prefix, wherever it put
    it and however it escaped it: a key pasted into a path must not land in the logs. And
    one line per request, whatever the path decodes to; and one line per record of the
    error log, as the app's console writes them."""

    atoms_wrapper_class = _RedactedAtoms

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # The error log too: a request gunicorn cannot parse is answered 400 by gunicorn
        # itself and logged at WARNING with what the client sent (the request line, a
        # header line without its colon, an Expect or Transfer-Encoding value), and at
        # DEBUG every request's path is logged as sent. A filter of the logger, not of a
        # handler: it holds for every handler gunicorn or a log config gives it.
        self.error_log.addFilter(_REFUSAL_REQUEST_ID)
        self.error_log.addFilter(_REDACT_TOKENS)
        # Then one line per record, as our console writes: a request's exception ("Error
        # handling request", a worker's or a hook's) came with its traceback on lines of
        # its own, which repeats the exception's message and so what a client sent in it.
        # Its copy of the record goes to every handler (Logger.handle, Python 3.12).
        self.error_log.addFilter(_ONE_LINE)


logger_class = TokenRedactingLogger


# What gunicorn refuses before the application sees the request, said without the request's
# text: its own message quotes the line it could not read (a token in the path or a header
# name, say), which its error log has redacted (TokenRedactingLogger) and its answer had not.
_REFUSALS = {
    400: "The request is not valid HTTP: its request line or a header holds a character HTTP "
    "does not allow there (a line break without its carriage return, a NUL, a control).",
    403: "This request is refused.",
    414: "The request line is too long: send a shorter path and query.",
    417: "The Expect header asks for what this server does not do.",
    431: "A request header, or the headers together, are larger than this server reads.",
    501: "This Transfer-Encoding is not supported.",
}


def _error_in_envelope(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's util.write_error, answering as the API answers every error (CONTRACT.md,
    Errors: JSON, the status repeated, a request id also in X-Request-Id), where gunicorn
    wrote an HTML page. `mesg` is not written back (see _REFUSALS). The request id is the
    one the error log's line about this refusal carries (_refusals_with_a_request_id)."""
    request_id = _refusal_id.get() or _new_request_id()
    client_error = 400 <= status_int < 500 or status_int == 501
    body = json.dumps(
        {
            "error": {
                "code": "invalid_request" if client_error else "internal_error",
                "message": _REFUSALS.get(status_int, "The request could not be read."),
                "status": status_int,
                "requestId": request_id,
            }
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"X-Request-Id: {request_id}\r\n"
        "Cache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def _new_request_id() -> str:
    return "req_" + secrets.token_hex(12)  # as api.errors.new_request_id


def _refusals_with_a_request_id(handle_error: Callable[..., None]) -> Callable[..., None]:
    """A worker's handle_error, which logs a refusal and then answers it (write_error),
    with the request id of its answer chosen first, so that its log line can carry it."""

    @functools.wraps(handle_error)
    def handle_error_with_a_request_id(*args: Any, **kwargs: Any) -> None:
        chosen = _refusal_id.set(_new_request_id())
        try:
            handle_error(*args, **kwargs)
        finally:
            _refusal_id.reset(chosen)

    return handle_error_with_a_request_id


def post_fork(server: Any, worker: Any) -> None:
    """A setting the process cannot use stops gunicorn with the one line that names it
    (reminix_dashboard/settings/environment.py), as gunicorn stops for an application it
    cannot import, not with each worker's traceback of the settings' import. Read in the
    worker, not the arbiter: the arbiter keeps what it imports across reloads (SIGHUP).

    And in the worker, what gunicorn refuses is answered in the API's envelope
    (_error_in_envelope): its Worker.handle_error looks up util.write_error at each call,
    and its log line carries the answer's request id (_refusals_with_a_request_id)."""
    util.write_error = _error_in_envelope
    worker.handle_error = _refusals_with_a_request_id(worker.handle_error)
    from django.core.exceptions import ImproperlyConfigured
    from gunicorn.errors import AppImportError

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reminix_dashboard.settings.base")
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018 - the settings read the environment here
    except ImproperlyConfigured as unusable:
        raise AppImportError(str(unusable)) from None


def worker_exit(server: Any, worker: Any) -> None:
    """Hand over what the worker holds before it goes (core/write_behind.py): the replies
    of the usage entries it sent to Redis, and whatever its own buffer still has, to the
    database or, failing that, to Redis. Without this an orderly restart or shutdown
    (SIGTERM, SIGHUP, max_requests) could lose what the last interval collected.
    """
    # Gunicorn also calls this hook in the arbiter for a worker that is already gone; the
    # arbiter never loaded Django and has no buffer of its own, so there is nothing to do.
    if worker.pid != os.getpid():
        return
    from django.apps import apps

    if not apps.ready:  # the worker died while loading the application
        return
    from core.write_behind import flush_at_exit

    flush_at_exit()
