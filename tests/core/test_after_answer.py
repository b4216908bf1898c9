"""The forms anyone can send do their work after their answer (core/after_answer.py): the
answer waits for no mail server, whichever mail the address gets (a reset link, word that
no account uses it, or nothing past the limits), so its time tells nothing."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from django.contrib.auth.hashers import make_password
from django.core import mail, signing
from django.core.mail.backends.base import BaseEmailBackend
from django.core.signals import request_finished, request_started
from django.db import OperationalError, close_old_connections, connection
from django.http import HttpResponse
from django.test import override_settings
from django.urls import reverse

import core.after_answer
import core.counters
from accounts.models import Project, User
from core.after_answer import after_answer, drain
from tests.conftest import held_back_until_both_are_ready, run_together, statements_run

RESET = reverse("accounts:password_reset")
SIGN_UP = reverse("accounts:signup")


class HeldBackend(BaseEmailBackend):
    """A mail server that answers only once the test lets it, and says on which thread
    each mail was sent."""

    open = threading.Event()
    sent: list[tuple[list[str], str, bool]] = []  # (to, subject, on the main thread)

    def send_messages(self, email_messages):  # type: ignore[no-untyped-def]
        on_main = threading.current_thread() is threading.main_thread()
        if not on_main and not HeldBackend.open.wait(10):
            raise TimeoutError("the test never let the mail through")
        for message in email_messages:
            HeldBackend.sent.append((list(message.to), message.subject, on_main))
        return len(email_messages)


class BrokenBackend(BaseEmailBackend):
    """A mail backend whose server is down: every send raises ConnectionRefusedError."""

    def send_messages(self, email_messages):  # type: ignore[no-untyped-def]
        raise ConnectionRefusedError("the mail server is down")


@pytest.fixture
def held_mail() -> Iterator[type[HeldBackend]]:
    HeldBackend.open.clear()
    HeldBackend.sent = []
    with override_settings(
        WORK_AFTER_ANSWER=True, EMAIL_BACKEND="tests.core.test_after_answer.HeldBackend"
    ):
        try:
            yield HeldBackend
        finally:
            HeldBackend.open.set()
            assert drain(timeout=10)


@pytest.mark.django_db(transaction=True)  # the thread's connection sees what committed
def test_a_reset_answers_before_the_mail_server_does_for_an_account_and_for_none(
    client, user, held_mail
):
    """Both answers come while the mail server has not taken either mail; both mails go
    once it does, neither on the request's thread."""
    known = client.post(RESET, {"email": user.email})
    unknown = client.post(RESET, {"email": "ghost@example.com"})
    assert known.status_code == unknown.status_code == 302
    assert held_mail.sent == []  # the answers did not wait for it

    held_mail.open.set()
    assert drain(timeout=10)
    assert sorted(to for to, _, _ in held_mail.sent) == [["ada@example.com"], ["ghost@example.com"]]
    assert not any(on_main for _, _, on_main in held_mail.sent)


@pytest.mark.django_db(transaction=True)
def test_past_the_no_account_cap_the_account_path_still_waits_for_no_mail_server(
    client, user, held_mail, monkeypatch
):
    """The case that told before: once the hour's "no account" mails were used up, an
    address without an account sent nothing and answered at once, while one with an
    account waited for the mail server."""
    import accounts.views.password

    monkeypatch.setattr(accounts.views.password, "NO_ACCOUNT_MAILS_PER_HOUR", 0)
    assert client.post(RESET, {"email": "ghost@example.com"}).status_code == 302
    assert client.post(RESET, {"email": user.email}).status_code == 302
    assert held_mail.sent == []
    held_mail.open.set()
    assert drain(timeout=10)
    assert [to for to, _, _ in held_mail.sent] == [["ada@example.com"]]


@pytest.mark.django_db(transaction=True)  # the thread's connection sees what committed
def test_sign_up_answers_before_the_account_is_written_or_any_mail_sent(client, user, held_mail):
    """A new address's account, written after the answer, and its confirmation link; a
    taken address's notice: the answer waits for neither (writing an account took long
    enough to tell which addresses have one)."""
    busy = threading.Event()
    after_answer(lambda: busy.wait(10), what="a job ahead of the sign-ups")
    for email in ("new@example.com", user.email):
        answer = client.post(
            SIGN_UP,
            {
                "email": email,
                "password1": "a long enough passphrase 4",
                "password2": "a long enough passphrase 4",
            },
        )
        assert answer.status_code == 200, answer.content
    assert not User.objects.filter(email="new@example.com").exists()
    busy.set()
    assert held_mail.sent == []
    held_mail.open.set()
    assert drain(timeout=10)
    new = User.objects.get(email="new@example.com")
    assert new.check_password("a long enough passphrase 4") and new.email_verified_at is None
    assert Project.objects.for_user(new).count() == 1
    subjects = {to[0]: subject for to, subject, _ in held_mail.sent}
    assert subjects == {
        "new@example.com": "[Reminix] Confirm your email address",
        "ada@example.com": "[Reminix] Your email address was used to sign up",
    }


@pytest.mark.django_db(transaction=True)
@override_settings(
    WORK_AFTER_ANSWER=True, EMAIL_BACKEND="tests.core.test_after_answer.BrokenBackend"
)
def test_a_mail_server_down_is_logged_without_the_address_and_the_thread_goes_on(
    client, user, caplog
):
    with caplog.at_level(logging.WARNING, logger="core.after_answer"):
        assert client.post(RESET, {"email": "ghost@example.com"}).status_code == 302
        assert drain(timeout=10)
    assert "not done" in caplog.text and "ghost" not in caplog.text
    assert "(ConnectionRefusedError)" in caplog.text  # what failed, for whoever reads it
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        client.post(RESET, {"email": user.email})
        assert drain(timeout=10)
    assert [m.to for m in mail.outbox] == [[user.email]]


@pytest.mark.django_db(transaction=True)
def test_a_sign_up_the_database_refuses_after_the_answer_is_logged_by_kind_and_no_address(
    client, held_mail, caplog, monkeypatch
):
    """The person was told to check their inbox: the log is where the lost account shows,
    once every try has met the database down."""
    import accounts.views.sign_up

    tries = []

    def refused(**_: object) -> None:
        tries.append(1)
        raise OperationalError("could not connect to server: new@example.com")

    monkeypatch.setattr(accounts.views.sign_up, "user_sign_up", refused)
    monkeypatch.setattr(core.after_answer, "RETRY_PAUSES", (0.0, 0.0))
    password = "a long enough passphrase 4"
    with caplog.at_level(logging.WARNING, logger="core.after_answer"):
        answer = client.post(
            SIGN_UP, {"email": "new@example.com", "password1": password, "password2": password}
        )
        assert answer.status_code == 200
        assert drain(timeout=10)
    assert "sign-up not done: it failed after the answer (OperationalError)" in caplog.text
    assert "new@example.com" not in caplog.text
    assert len(tries) == 3


@pytest.mark.django_db(transaction=True)
def test_a_sign_up_that_meets_the_database_down_for_a_moment_is_written_on_the_next_try(
    client, held_mail, monkeypatch
):
    """After the answer nobody is there to try again: the thread does, so a moment's
    outage does not lose an account whose person was told to check their inbox."""
    import accounts.views.sign_up

    real, tries = accounts.views.sign_up.user_sign_up, []

    def down_once(**kwargs: Any) -> User:
        tries.append(1)
        if len(tries) == 1:
            raise OperationalError("the database system is starting up")
        return real(**kwargs)

    monkeypatch.setattr(accounts.views.sign_up, "user_sign_up", down_once)
    monkeypatch.setattr(core.after_answer, "RETRY_PAUSES", (0.0, 0.0))
    password = "a long enough passphrase 4"
    answer = client.post(
        SIGN_UP, {"email": "new@example.com", "password1": password, "password2": password}
    )
    assert answer.status_code == 200
    held_mail.open.set()
    assert drain(timeout=10)
    assert len(tries) == 2
    assert User.objects.get(email="new@example.com").check_password(password)
    assert [to for to, _, _ in held_mail.sent] == [["new@example.com"]]


def test_a_job_that_fails_otherwise_is_not_tried_again(held_mail, monkeypatch, caplog):
    monkeypatch.setattr(core.after_answer, "RETRY_PAUSES", (0.0, 0.0))
    tries = []

    def broken() -> None:
        tries.append(1)
        raise ValueError("not the database")

    with caplog.at_level(logging.WARNING, logger="core.after_answer"):
        after_answer(broken, what="a broken job")
        assert drain(timeout=10)
    assert tries == [1]
    assert "a broken job not done: it failed after the answer (ValueError)" in caplog.text


def test_a_job_that_raises_system_exit_does_not_end_the_thread(held_mail, caplog):
    done = threading.Event()
    with caplog.at_level(logging.WARNING, logger="core.after_answer"):
        after_answer(lambda: sys.exit(1), what="a job that exits")
        after_answer(done.set, what="the job after it")
        assert drain(timeout=10) and done.is_set()
    assert "a job that exits not done: it raised SystemExit" in caplog.text


def test_a_full_queue_sends_on_the_request_rather_than_lose_the_mail(held_mail, monkeypatch):
    monkeypatch.setattr(core.after_answer, "MAX_WAITING", 1)
    monkeypatch.setattr(core.after_answer, "_worker", None)  # a queue of one
    sent: list[str] = []
    taken, released = threading.Event(), threading.Event()

    def slow() -> None:
        taken.set()
        released.wait(10)
        sent.append("first")

    after_answer(slow, what="first")
    assert taken.wait(10)  # the thread is in it
    after_answer(lambda: sent.append("second"), what="second")  # waits in the queue
    after_answer(lambda: sent.append("third"), what="third")  # no room: sent now
    assert sent == ["third"]
    released.set()
    assert drain(timeout=10)
    assert sent == ["third", "first", "second"]


def test_drain_gives_up_after_its_timeout_and_says_how_many_wait(held_mail, caplog):
    after_answer(lambda: held_mail.open.wait(10), what="stuck")
    with caplog.at_level(logging.WARNING, logger="core.after_answer"):
        assert not drain(timeout=0.2)
    assert "1 jobs not done at exit" in caplog.text


# -- What the answer waits for is the same whether or not the address has an account


def on_the_request(send: Callable[[], HttpResponse]) -> tuple[list[str], list[str], int]:
    """What `send` did on the request's thread: the throttles it counted (by name), the
    SQL it ran, and how many values it signed. The work after the answer, on the thread
    of core.after_answer, is left out: its time is not the answer's."""
    throttles: list[str] = []
    signed = [0]
    count, dumps = core.counters.window_count, signing.dumps

    def counted(bucket: str, **kwargs: Any) -> int:
        if threading.current_thread() is threading.main_thread():
            throttles.append(bucket.split(":")[1])
        return count(bucket, **kwargs)

    def signing_dumps(*args: Any, **kwargs: Any) -> str:
        if threading.current_thread() is threading.main_thread():
            signed[0] += 1
        return dumps(*args, **kwargs)

    with (
        pytest.MonkeyPatch.context() as patch,
        statements_run() as statements,
    ):
        patch.setattr(core.counters, "window_count", counted)
        patch.setattr(signing, "dumps", signing_dumps)
        answer = send()
    assert answer.status_code in (200, 302), answer.content
    return throttles, statements, signed[0]


@pytest.mark.django_db(transaction=True)
def test_a_reset_does_the_same_on_the_request_for_an_account_and_for_none(client, user, held_mail):
    """The account's lookup and the "no account" mails' count are after the answer: that
    count was a third call of the cache for an address without an account only, and with
    a Redis that stalls each call takes its timeout (0.5 s)."""
    known = on_the_request(lambda: client.post(RESET, {"email": user.email}))
    unknown = on_the_request(lambda: client.post(RESET, {"email": "ghost@example.com"}))
    assert known == unknown
    held_mail.open.set()
    assert drain(timeout=10)
    assert sorted(to for to, _, _ in held_mail.sent) == [["ada@example.com"], ["ghost@example.com"]]


@pytest.mark.django_db(transaction=True)
def test_a_sign_up_from_an_invitation_link_does_the_same_on_the_request_either_way(
    client, user, held_mail
):
    """A well-formed link that is no invitation (anyone can make one) was looked up for a
    new address only."""
    link = "/invitations/reminix_inv_" + "A" * 40 + "/"
    work = [
        on_the_request(
            lambda email=email: client.post(
                SIGN_UP,
                {
                    "email": email,
                    "password1": "a long enough passphrase 4",
                    "password2": "a long enough passphrase 4",
                    "next": link,
                },
            )
        )
        for email in (user.email, "new@example.com")
    ]
    assert work[0] == work[1]


@pytest.mark.django_db(transaction=True)
def test_an_address_change_does_the_same_on_the_request_for_a_taken_address_and_a_free_one(
    signed_in, make_user, held_mail
):
    """The link for a free address was signed on the request, the word for a taken one
    not."""
    other = make_user("taken@example.com")
    change = reverse("accounts:account_email")
    taken = on_the_request(lambda: signed_in.post(change, {"email": other.email}))
    free = on_the_request(lambda: signed_in.post(change, {"email": "free@example.com"}))
    assert taken == free
    held_mail.open.set()
    assert drain(timeout=10)
    subjects = {to[0]: subject for to, subject, _ in held_mail.sent}
    assert subjects == {
        "taken@example.com": "[Reminix] Your email address was used to sign up",
        "free@example.com": "[Reminix] Confirm your email address",
    }


def test_work_handed_over_during_a_request_waits_until_its_answer_is_sent(held_mail):
    """Begun while the request was still rendering its page, the thread's work shared the
    interpreter with it, and a new account's is heavier than a mail: the answer's time
    still told a little."""
    done = threading.Event()
    # As the test client sends them: without the database's receivers.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        request_started.send(sender=None)
        try:
            after_answer(done.set, what="a job of this request")
            assert drain(timeout=0) and not done.is_set()  # not even handed over yet
        finally:
            request_finished.send(sender=None)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    assert drain(timeout=10) and done.is_set()


@pytest.mark.django_db(transaction=True)
def test_a_sign_up_reads_no_user_on_the_request(client, user, held_mail):
    """Whether the address has an account is asked after the answer: on PostgreSQL the
    lookup (iexact, a scan that ends at the first match) took 27 ms less for an early
    account than for a new address among 100,000 users."""
    password = "a long enough passphrase 4"
    for email in (user.email, "new@example.com"):
        _, statements, _ = on_the_request(
            lambda email=email: client.post(
                SIGN_UP, {"email": email, "password1": password, "password2": password}
            )
        )
        assert not [sql for sql in statements if "accounts_user" in sql]
    held_mail.open.set()
    assert drain(timeout=10)
    subjects = {to[0]: subject for to, subject, _ in held_mail.sent}
    assert subjects == {
        "ada@example.com": "[Reminix] Your email address was used to sign up",
        "new@example.com": "[Reminix] Confirm your email address",
    }


@pytest.mark.django_db(transaction=True)
def test_two_sign_ups_for_one_new_address_at_once_make_one_account_and_tell_its_owner(
    monkeypatch, held_mail
):
    """Two processes' threads, both past the lookup before either writes: the second's
    row waits for the first's and is refused; its sign-up tells the owner, as for any
    taken address, and the account has the winner's password, not the other's."""
    import accounts.views.sign_up

    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: concurrency is shown on PostgreSQL.")
    held_back_until_both_are_ready(monkeypatch, (accounts.views.sign_up, "user_sign_up"))
    signed_up = [
        partial(
            accounts.views.sign_up._sign_up_or_tell,
            email="new@example.com",
            password_hash=make_password(password),
            name="",
            ip=None,
        )
        for password in ("the first passphrase 1", "the second passphrase 2")
    ]
    run_together(*signed_up)
    assert User.objects.filter(email="new@example.com").count() == 1
    held_mail.open.set()
    assert drain(timeout=10)
    assert sorted(subject for _, subject, _ in held_mail.sent) == [
        "[Reminix] Confirm your email address",
        "[Reminix] Your email address was used to sign up",
    ]
    account = User.objects.get(email="new@example.com")
    assert account.check_password("the first passphrase 1") != account.check_password(
        "the second passphrase 2"
    )
