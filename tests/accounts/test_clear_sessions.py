"""The daily clear_sessions job: expired sessions go, and so do the Sessions page's
records of them; a live session and a record written a moment before its session stay.
Passkey challenges recorded as used go once they are too old to be taken anyway."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import timedelta

from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.utils import timezone

from accounts.models import PendingSecondStep, SignedInSession, UsedPasskeyChallenge
from tests.conftest import statements_run, statements_time_out


def session(expires_in: timedelta) -> str:
    store = SessionStore()
    store["x"] = 1
    store.create()
    Session.objects.filter(session_key=store.session_key).update(
        expire_date=timezone.now() + expires_in
    )
    return str(store.session_key)


def test_expired_sessions_and_their_records_are_removed(user):
    live, expired = session(timedelta(days=1)), session(-timedelta(minutes=1))
    long_ago = timezone.now() - timedelta(days=3)
    for key in (live, expired, "never-saved-and-old"):
        SignedInSession.objects.create(user=user, session_key=key, last_seen_at=long_ago)
    SignedInSession.objects.create(user=user, session_key="being-signed-in-now")
    out = io.StringIO()
    call_command("clear_sessions", stdout=out)
    assert "Removed 2 records of ended sessions." in out.getvalue()
    assert set(Session.objects.values_list("session_key", flat=True)) == {live}
    assert set(SignedInSession.objects.values_list("session_key", flat=True)) == {
        live,
        "being-signed-in-now",
    }


def test_used_passkey_challenges_go_once_they_have_expired_anyway(db):
    now = timezone.now()
    UsedPasskeyChallenge.objects.create(digest="a" * 64, used_at=now - timedelta(hours=2))
    UsedPasskeyChallenge.objects.create(digest="b" * 64, used_at=now - timedelta(minutes=10))
    out = io.StringIO()
    call_command("clear_sessions", stdout=out)
    assert "Removed 1 used passkey challenge." in out.getvalue()
    assert list(UsedPasskeyChallenge.objects.values_list("digest", flat=True)) == ["b" * 64]


def test_second_steps_whose_sessions_ended_are_forgotten(user):
    waiting, ended = session(timedelta(days=1)), session(-timedelta(minutes=1))
    long_ago = timezone.now() - timedelta(days=3)
    for key in (waiting, ended, "given-a-new-key-at-sign-in"):
        PendingSecondStep.objects.create(user=user, session_key=key, started_at=long_ago)
    PendingSecondStep.objects.create(user=user, session_key="being-begun-now")
    call_command("clear_sessions", stdout=io.StringIO())
    assert set(PendingSecondStep.objects.values_list("session_key", flat=True)) == {
        waiting,
        "being-begun-now",
    }


def ended_sessions_piled_up(user, count: int) -> None:
    """`count` expired sessions, each with its Sessions page record and a second step,
    and as many passkey challenges used long ago: what months without the job leave."""
    long_ago = timezone.now() - timedelta(days=3)
    for n in range(count):
        key = session(-timedelta(days=1, minutes=n))
        SignedInSession.objects.create(user=user, session_key=key, last_seen_at=long_ago)
        PendingSecondStep.objects.create(user=user, session_key=key, started_at=long_ago)
        UsedPasskeyChallenge.objects.create(digest=f"{n:064x}", used_at=long_ago)


def test_a_pile_of_ended_sessions_is_cleared_a_bounded_batch_at_a_time(user, monkeypatch):
    """Each kind went in one DELETE of everything ended (Django's clear_expired as well):
    with enough piled up, longer than DB_STATEMENT_TIMEOUT, so the job failed the same way
    every day and the tables grew for good."""
    monkeypatch.setattr("core.batched_delete.DELETE_BATCH", 3)
    live = session(timedelta(days=1))
    ended_sessions_piled_up(user, 7)
    with statements_run() as statements:
        call_command("clear_sessions", stdout=io.StringIO())
    deletes = [sql for sql in statements if sql.startswith("DELETE")]
    # each by the keys of one batch, never by the condition that matches the whole pile
    assert deletes and all(" IN (" in sql and sql.count("%s") <= 3 for sql in deletes)
    assert list(Session.objects.values_list("session_key", flat=True)) == [live]
    assert not SignedInSession.objects.exists() and not PendingSecondStep.objects.exists()
    assert not UsedPasskeyChallenge.objects.exists()


def test_a_pile_of_ended_sessions_longer_to_delete_than_the_statement_timeout_is_cleared(
    user, monkeypatch
):
    """On PostgreSQL, every DELETE that is not one bounded batch of keys runs into the
    statement timeout, as one over a pile of ended sessions would."""
    monkeypatch.setattr("core.batched_delete.DELETE_BATCH", 3)
    ended_sessions_piled_up(user, 7)

    def whole_pile(sql: str, params: Sequence[object]) -> bool:
        return sql.startswith("DELETE") and (" IN (" not in sql or len(params) > 3)

    with statements_time_out(whole_pile):
        call_command("clear_sessions", stdout=io.StringIO())
    assert not Session.objects.exists() and not SignedInSession.objects.exists()
    assert not PendingSecondStep.objects.exists() and not UsedPasskeyChallenge.objects.exists()
