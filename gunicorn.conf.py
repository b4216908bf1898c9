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
