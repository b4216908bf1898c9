"""Expiry reminders when one token's row is held by another transaction past the lock
timeout (55P03), which Django raises as an OperationalError, as it does a lost
connection: that reminder waits for the next run, and every other one goes now."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import OperationalError, connection
from django.utils import timezone

from accounts.models import Project
from apikeys import reminders
from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.reminders import send_expiry_reminders
from apikeys.services import api_key_create, personal_token_create
from tests.conftest import committed_elsewhere, row_locked_elsewhere

OTHER_OWNER = "other-owner@example.com"


def expiring_key(project: Project, name: str) -> ApiKey:
    owner = project.memberships.get().user
    key, _ = api_key_create(
        project=project, name=name, created_by=owner, expires_at=timezone.now() + timedelta(days=3)
    )
    return key


def expiring_token(user, name: str) -> PersonalAccessToken:
    pat, _ = personal_token_create(user=user, name=name)
    PersonalAccessToken.objects.filter(pk=pat.pk).update(
        expires_at=timezone.now() + timedelta(days=3)
    )
    return pat


@pytest.mark.django_db(transaction=True)
def test_a_key_held_elsewhere_waits_for_the_next_run_and_the_others_go_now(
    project, make_user, short_lock_timeout
):
    theirs = expiring_key(Project.objects.for_user(make_user(email=OTHER_OWNER)).get(), "Theirs")
    mine = expiring_key(project, "Mine")  # the newest: the first key of every run
    with row_locked_elsewhere(mine):
        first, second = send_expiry_reminders(), send_expiry_reminders()
        assert [m.to for m in mail.outbox] == [[OTHER_OWNER]]
    assert (first.sent, first.skipped) == (1, 1)
    assert (second.sent, second.skipped) == (0, 1)  # reached first again, and waits again
    assert ApiKey.objects.get(pk=mine.pk).expiry_week_reminder_sent_at is None
    assert ApiKey.objects.get(pk=theirs.pk).expiry_week_reminder_sent_at is not None
    later = send_expiry_reminders()
    assert (later.sent, later.skipped) == (1, 0)
    assert "Mine" in mail.outbox[1].subject


@pytest.mark.django_db(transaction=True)
def test_a_personal_token_held_elsewhere_stops_neither_other_tokens_nor_key_reminders(
    user, project, make_user, short_lock_timeout
):
    mine = expiring_token(user, "Mine")
    theirs = expiring_token(make_user(email=OTHER_OWNER), "Theirs")
    expiring_key(project, "Deploy")
    with row_locked_elsewhere(mine):
        result = send_expiry_reminders()
    assert (result.sent, result.skipped) == (2, 1)
    assert PersonalAccessToken.objects.get(pk=theirs.pk).expiry_reminder_sent_at is not None
    assert PersonalAccessToken.objects.get(pk=mine.pk).expiry_reminder_sent_at is None
    assert send_expiry_reminders().sent == 1


def test_a_lost_connection_still_stops_the_run_for_the_next_one_to_retry(
    project, make_user, monkeypatch
):
    from apikeys import reminders

    expiring_key(project, "Mine")
    expiring_key(Project.objects.for_user(make_user(email=OTHER_OWNER)).get(), "Theirs")

    def connection_lost(key, now, *rest):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(reminders, "_remind_key", connection_lost)
    with pytest.raises(OperationalError):
        send_expiry_reminders()


def revoked_meanwhile(token, monkeypatch) -> list[str]:
    """Run the reminders with a mail server that, while it is sending, lets an owner
    revoke `token` from another connection (giving up on its row after 100 ms); the
    subjects mailed."""
    table = connection.ops.quote_name(type(token)._meta.db_table)
    subjects: list[str] = []

    def mail_server_answering_slowly(**message):
        committed_elsewhere(f"UPDATE {table} SET revoked_at = now() WHERE id = %s", [token.pk])  # noqa: S608
        subjects.append(message["subject"])

    monkeypatch.setattr(reminders, "send_mail", mail_server_answering_slowly)
    assert send_expiry_reminders().sent == 1
    return subjects


@pytest.mark.django_db(transaction=True)
def test_a_key_can_be_revoked_while_its_reminder_is_being_mailed(project, monkeypatch):
    """Found in review: the reminder held the key's row until the mail server had answered
    every recipient (seconds each), so a revoke of that key waited, and past the lock
    timeout failed."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's")
    key = expiring_key(project, "Deploy")
    subjects = revoked_meanwhile(key, monkeypatch)
    assert subjects == ["[Reminix] API key “Deploy” of Ada's project expires within a week"]
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None


@pytest.mark.django_db(transaction=True)
def test_a_personal_token_can_be_revoked_while_its_reminder_is_being_mailed(user, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's")
    pat = expiring_token(user, "Laptop")
    assert revoked_meanwhile(pat, monkeypatch) == ["[Reminix] Your token “Laptop” expires soon"]
    assert PersonalAccessToken.objects.get(pk=pat.pk).revoked_at is not None


def test_a_reminder_the_mail_server_refused_is_claimed_again_next_run(project, user, monkeypatch):
    key = expiring_key(project, "Deploy")
    pat = expiring_token(user, "Laptop")

    def refused(**message):
        raise OSError("connection refused")

    monkeypatch.setattr(reminders, "send_mail", refused)
    assert send_expiry_reminders().skipped == 2
    assert ApiKey.objects.get(pk=key.pk).expiry_week_reminder_sent_at is None
    assert PersonalAccessToken.objects.get(pk=pat.pk).expiry_reminder_sent_at is None
    monkeypatch.undo()
    assert send_expiry_reminders().sent == 2


def test_a_last_day_reminder_refused_gives_back_both_claims(project, monkeypatch):
    key = expiring_key(project, "Deploy")
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() + timedelta(hours=5))

    def refused(**message):
        raise OSError("connection refused")

    monkeypatch.setattr(reminders, "send_mail", refused)
    assert send_expiry_reminders().skipped == 1
    key.refresh_from_db()
    assert (key.expiry_week_reminder_sent_at, key.expiry_day_reminder_sent_at) == (None, None)
