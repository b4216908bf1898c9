"""Gunicorn settings for `make serve` (and so for `make bench`).

Gunicorn reads ./gunicorn.conf.py from the directory it starts in, which for `make serve`
is the repository root. Flags on the command line (the Makefile's --bind, --workers and
access log) win over the values here; these are the defaults for a bare `gunicorn
reminix_dashboard.wsgi:application`.
"""

from __future__ import annotations

import os
from typing import Any

bind = f"127.0.0.1:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))


def worker_exit(server: Any, worker: Any) -> None:
    """Write the worker's buffered usage entries before it goes (usage/writer.py).

    The buffer is flushed by a background thread every USAGE_FLUSH_SECONDS; without this
    an orderly restart or shutdown (SIGTERM, SIGHUP, max_requests) would lose what the
    last interval collected.
    """
    # Gunicorn also calls this hook in the arbiter for a worker that is already gone; the
    # arbiter never loaded Django and has no buffer of its own, so there is nothing to do.
    if worker.pid != os.getpid():
        return
    from django.apps import apps

    if not apps.ready:  # the worker died while loading the application
        return
    from usage.writer import usage_buffer

    written = usage_buffer.flush()
    if written:
        server.log.info("Worker %s wrote %d buffered usage entries on exit", worker.pid, written)
