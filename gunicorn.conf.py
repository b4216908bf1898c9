"""Gunicorn settings for `make serve` (and so for `make bench`).

Gunicorn reads ./gunicorn.conf.py from the directory it starts in, which for `make serve`
is the repository root. Flags on the command line (the Makefile's --bind, --workers and
access log) win over the values here; these are the defaults for a bare `gunicorn
reminix_dashboard.wsgi:application`.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from gunicorn.glogging import Logger

from core.redact import redact_tokens

bind = f"127.0.0.1:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# One control socket per port: two `make serve` on one host would otherwise share the
# default path, and stopping one would delete the other's.
control_socket = os.path.join(
    tempfile.gettempdir(), f"reminix-gunicorn-{os.environ.get('PORT', '8000')}.ctl"
)


class TokenRedactingLogger(Logger):
    """The access log with any token a client put in the URL, the referrer or the user
    agent cut down to its prefix: a key pasted into a path must not land in the logs."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for name in ("r", "U", "q", "f", "a"):
            value = atoms.get(name)
            if isinstance(value, str):
                atoms[name] = redact_tokens(value)
        return atoms


logger_class = TokenRedactingLogger


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
