"""Work done after the answer, by a thread of this process, not while the page waits.

The forms anyone can send about an address (a password reset, a sign-up, an address
change) answer alike whether or not the address has an account; but the work behind them
differs: a reset link for an account or word that there is none, or, past the limits,
nothing at all; a new account and its first project written, or a word to the existing
one's owner. Done on the request, that work's time was in the answer's, and the time told
which addresses have an account (a reset for one, once the "no account" mails of the hour
were used up, waited for a mail server; a sign-up of a new address took some 18 ms more
on PostgreSQL, writing the account). Handed to a thread here, the answer waits for none
of it, and a slow or dead mail server no longer holds a worker for EMAIL_TIMEOUT either.

What waits here lives in this process's memory: a process killed outright loses the work
not yet done (an orderly exit does it first, for up to DRAIN_SECONDS), as a killed
process always lost the mail it was sending. A full queue (a mail server down for long)
does the next job on the request again, slower but not lost.

"After the answer" is after it was sent: work handed over during a request waits until
the request has finished (Django's request_finished, sent once the server has written the
response), as the thread's CPU would otherwise share the interpreter with the answer's
last steps (its page's rendering), and a new account's writing is heavier than a mail.

settings.WORK_AFTER_ANSWER off (the tests' settings) does it at once, on the request, so
a test reads its mail and rows right after the response; tests/core/test_after_answer.py
checks the thread itself.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar

from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import InterfaceError, OperationalError, connections

logger = logging.getLogger(__name__)

MAX_WAITING = 1000
DRAIN_SECONDS = 10.0
# Pauses before a job the database could not serve is tried again (_do_with_retries):
# three tries within about 6 s, inside the drain at exit.
RETRY_PAUSES = (1.0, 5.0)

type Job = Callable[[], object]

# The jobs of the request under way (a context variable: one per thread under WSGI, one
# per request under ASGI); None outside a request, where a job is handed over at once.
_this_request: ContextVar[list[tuple[Job, str]] | None] = ContextVar(
    "after_answer_jobs", default=None
)


class _Worker:
    """One thread per process, started with the first job (after a fork, too)."""

    def __init__(self) -> None:
        self.waiting: queue.Queue[tuple[Job, str]] = queue.Queue(maxsize=MAX_WAITING)
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._run, name="after-answer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            job, what = self.waiting.get()
            try:
                _do_with_retries(job, what)
            except BaseException as error:  # noqa: BLE001 - the thread must outlive any job
                # A SystemExit (or another exception that is no Exception) raised by a job
                # ended this thread: every job after it waited forever, unseen.
                logger.warning("%s not done: it raised %s", what, type(error).__name__)
            try:
                # A job may have used the database: this thread's connection closes.
                connections.close_all()
            except Exception:
                logger.warning("after-answer thread: closing its database connection failed")
            finally:
                self.waiting.task_done()


_worker: _Worker | None = None
_lock = threading.Lock()


def _running_worker() -> _Worker:
    global _worker
    with _lock:
        if _worker is None or _worker.pid != os.getpid():
            _worker = _Worker()
        return _worker


def _do_now(job: Job, what: str) -> None:
    try:
        job()
    except Exception as error:
        # Its kind only, never the error's text: that may name the address, or hold a
        # reset link. The kind tells a database down (a sign-up lost) from a mail server.
        logger.warning("%s not done: it failed after the answer (%s)", what, type(error).__name__)


def _do_with_retries(job: Job, what: str) -> None:
    """On the thread: a job the database could not serve just then (down, restarting, a
    connection broken, past a timeout) is tried again after RETRY_PAUSES, so that a
    sign-up is not lost to a moment's outage (its person was already told to check their
    inbox). Jobs are written to be tried again: a sign-up is one transaction, a reset's
    lookup comes before its mail. Any other failure is logged once, as on the request."""
    for pause in RETRY_PAUSES:
        try:
            job()
            return
        except (OperationalError, InterfaceError) as error:
            logger.warning(
                "%s: the database did not answer (%s); trying again in %g s",
                what,
                type(error).__name__,
                pause,
            )
            connections.close_all()  # the next try opens a new connection
            time.sleep(pause)
        except Exception as error:
            logger.warning(
                "%s not done: it failed after the answer (%s)", what, type(error).__name__
            )
            return
    _do_now(job, what)


def after_answer(job: Job, *, what: str) -> None:
    """Run `job` after the answer, on this process's thread for such work. `what` names
    it in the log if it fails (never an address: the log is no place for one)."""
    if not settings.WORK_AFTER_ANSWER:
        _do_now(job, what)
        return
    jobs = _this_request.get()
    if jobs is not None:
        jobs.append((job, what))  # handed over once the answer is sent
        return
    _hand_over(job, what)


def _hand_over(job: Job, what: str) -> None:
    try:
        _running_worker().waiting.put_nowait((job, what))
    except queue.Full:
        logger.warning("after-answer queue full: %s done on the request", what)
        _do_now(job, what)


def _hand_over_this_requests(**_: object) -> None:
    """Once the answer is sent (request_finished): the request's jobs go to the thread.
    At a request's start too, for any a request that never finished left behind."""
    jobs = _this_request.get()
    _this_request.set(None)
    for job, what in jobs or ():
        _hand_over(job, what)


def _request_begins(**_: object) -> None:
    _hand_over_this_requests()
    _this_request.set([])


request_started.connect(_request_begins, dispatch_uid="core.after_answer.begins")
request_finished.connect(_hand_over_this_requests, dispatch_uid="core.after_answer.finished")


def drain(timeout: float = DRAIN_SECONDS) -> bool:
    """Wait until every job handed over is done, at most `timeout` seconds. True if none
    is left. At exit, and in tests."""
    worker = _worker
    if worker is None or worker.pid != os.getpid():
        return True
    deadline = time.monotonic() + timeout
    while worker.waiting.unfinished_tasks:
        if time.monotonic() >= deadline:
            logger.warning(
                "%d jobs not done at exit: they did not finish in time (a mail server?)",
                worker.waiting.unfinished_tasks,
            )
            return False
        time.sleep(0.01)
    return True


atexit.register(drain)
