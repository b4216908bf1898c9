"""Mail sent after the answer, by a thread of this process, not while the page waits.

The forms that mail whatever address someone types (a password reset, a sign-up, an
address change) answer alike whether or not the address has an account; but the mail
itself differs: a reset link for an account, a word that there is none, or, past the
limits, nothing at all. Sent on the request, the mail server's time was in the answer's,
and the time told which addresses have an account (a reset for one once the "no account"
mails of the hour were used up, or with Redis down, took a mail server's answer longer).
Handed to a thread here, the answer waits for no mail server, whichever mail it is, and
a slow or dead mail server no longer holds a worker for EMAIL_TIMEOUT either.

What waits here lives in this process's memory: a process killed outright loses the mails
not yet sent (an orderly exit sends them first, for up to DRAIN_SECONDS), as a killed
process always lost the one it was sending. A queue full of waiting mail (a mail server
down for long) sends the next one on the request again, slower but not lost.

settings.MAIL_AFTER_ANSWER off (the tests' settings) sends at once, on the request, so a
test reads its mail right after the response; tests/core/test_mail_after_answer.py checks
the thread itself.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

MAX_WAITING = 1000
DRAIN_SECONDS = 10.0

type Send = Callable[[], object]


class _Sender:
    """One thread per process, started with the first mail (after a fork, too)."""

    def __init__(self) -> None:
        self.waiting: queue.Queue[tuple[Send, str]] = queue.Queue(maxsize=MAX_WAITING)
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._run, name="mail-after-answer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            send, what = self.waiting.get()
            try:
                _send_now(send, what)
                # A template may have read the database: this thread's connection closes.
                connections.close_all()
            except Exception:
                logger.warning("mail thread: closing its database connection failed")
            finally:
                self.waiting.task_done()


_sender: _Sender | None = None
_lock = threading.Lock()


def _running_sender() -> _Sender:
    global _sender
    with _lock:
        if _sender is None or _sender.pid != os.getpid():
            _sender = _Sender()
        return _sender


def _send_now(send: Send, what: str) -> None:
    try:
        send()
    except Exception:
        # Neither the address nor the mail is logged: it may hold a reset link.
        logger.warning("%s not sent: the mail server did not take it", what, exc_info=False)


def send_after_answer(send: Send, *, what: str) -> None:
    """Run `send` (which builds and sends one mail) after the answer, on this process's
    mail thread. `what` names the mail in the log if it cannot be sent."""
    if not settings.MAIL_AFTER_ANSWER:
        _send_now(send, what)
        return
    try:
        _running_sender().waiting.put_nowait((send, what))
    except queue.Full:
        logger.warning("mail queue full: %s sent on the request", what)
        _send_now(send, what)


def drain(timeout: float = DRAIN_SECONDS) -> bool:
    """Wait until every mail handed over has been sent, at most `timeout` seconds. True
    if none is left. At exit, and in tests."""
    sender = _sender
    if sender is None or sender.pid != os.getpid():
        return True
    deadline = time.monotonic() + timeout
    while sender.waiting.unfinished_tasks:
        if time.monotonic() >= deadline:
            logger.warning(
                "%d mails not sent at exit: the mail server did not answer in time",
                sender.waiting.unfinished_tasks,
            )
            return False
        time.sleep(0.01)
    return True


atexit.register(drain)
