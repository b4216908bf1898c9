"""Expiry reminders over a deleted project and a deleted account: nobody is reminded of a
key or token the deletion revoked, not even when the deletion commits while the run is
on its way through the same tokens, and everyone else's reminders still go."""

from __future__ import annotations

from django.core import mail

from accounts.models import Project
from accounts.services import account_delete, project_delete
from apikeys import reminders
from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.reminders import send_expiry_reminders
from tests.apikeys.test_reminder_timeouts import OTHER_OWNER, expiring_key, expiring_token


def test_a_deleted_projects_keys_and_a_deleted_accounts_tokens_are_not_reminded(
    user, project, make_user
):
    expiring_key(project, "Mine")
    expiring_token(user, "My CLI")
    theirs = expiring_key(Project.objects.for_user(make_user(email=OTHER_OWNER)).get(), "Theirs")
    account_delete(user=user)
    mail.outbox.clear()

    result = send_expiry_reminders()

    assert (result.sent, result.skipped) == (1, 0)
    assert [m.to for m in mail.outbox] == [[OTHER_OWNER]]
    assert ApiKey.objects.get(pk=theirs.pk).expiry_week_reminder_sent_at is not None


def test_a_project_deleted_after_its_owners_were_read_gets_no_reminder(
    user, project, make_user, monkeypatch
):
    """The deletion commits after the run read whom to tell and before it claims the key:
    the claim must see the key revoked, or the former members are told of a key that no
    longer exists, just after being told their project is gone."""
    mine = expiring_key(project, "Mine")
    theirs = expiring_key(Project.objects.for_user(make_user(email=OTHER_OWNER)).get(), "Theirs")
    real = reminders.expiry_email_recipients

    def deleted_meanwhile(project_id: int) -> list[str]:
        recipients = real(project_id)
        if project_id == project.pk:
            project_delete(project=Project.objects.get(pk=project.pk), by=user)
        return recipients

    monkeypatch.setattr(reminders, "expiry_email_recipients", deleted_meanwhile)
    mail.outbox.clear()

    result = send_expiry_reminders()

    assert [m.to for m in mail.outbox] == [[OTHER_OWNER]]
    assert result.sent == 1
    assert ApiKey.objects.get(pk=mine.pk).expiry_week_reminder_sent_at is None
    assert ApiKey.objects.get(pk=theirs.pk).expiry_week_reminder_sent_at is not None


def test_an_account_deleted_after_its_token_was_read_gets_no_reminder(user, make_user, monkeypatch):
    """Read with the token, the address is the one the account had: a reminder sent to it
    after the deletion would go to someone who asked to hear nothing more."""
    mine = expiring_token(user, "My CLI")
    other = make_user(email=OTHER_OWNER)
    theirs = expiring_token(other, "Their CLI")
    real = reminders._remind

    def deleted_meanwhile(pat: PersonalAccessToken, now, *rest) -> int:
        if pat.pk == mine.pk:
            account_delete(user=type(user).objects.get(pk=user.pk))
        return real(pat, now, *rest)

    monkeypatch.setattr(reminders, "_remind", deleted_meanwhile)
    mail.outbox.clear()

    result = send_expiry_reminders()

    assert [m.to for m in mail.outbox] == [[OTHER_OWNER]]
    assert result.sent == 1
    assert PersonalAccessToken.objects.get(pk=mine.pk).expiry_reminder_sent_at is None
    assert PersonalAccessToken.objects.get(pk=theirs.pk).expiry_reminder_sent_at is not None


def test_a_token_left_working_on_a_deleted_account_is_not_reminded(user, make_user):
    """A token left working on a deleted account (personal_token_create now refuses one
    whose making waited for the deletion; one made before that, or by hand, stays): the
    reminder would go to deleted-<id>@deleted.invalid."""
    left = expiring_token(user, "Made meanwhile")
    account_delete(user=user)
    PersonalAccessToken.objects.filter(pk=left.pk).update(revoked_at=None, revoked_by=None)
    expiring_token(make_user(email=OTHER_OWNER), "Their CLI")
    mail.outbox.clear()

    result = send_expiry_reminders()

    assert [m.to for m in mail.outbox] == [[OTHER_OWNER]]
    assert (result.sent, result.skipped) == (1, 0)
