"""The jobs while a project's deletion is under way in another transaction (PostgreSQL: its
keys revoked and its members removed, not yet committed): the usage log and detection do
not wait for it, and a reminder that waits for one of its keys finds it revoked once the
deletion commits, and mails nobody (it had read the members before the deletion)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Project
from accounts.services import account_delete, project_delete
from alerts.detection import detect
from alerts.models import Flag
from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.reminders import ReminderResult, send_expiry_reminders
from tests.apikeys.test_reminder_timeouts import OTHER_OWNER, expiring_key, expiring_token
from tests.conftest import (
    finished,
    paused_in_another_thread,
    started_recording,
    usage_call,
    waits_for,
)
from usage.models import UsageRecord
from usage.writer import usage_write


@pytest.mark.django_db(transaction=True)
def test_the_jobs_go_on_for_everyone_while_a_deletion_holds_its_rows(
    project, user, make_user, monkeypatch
):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: the locks are PostgreSQL's.")
    theirs_project = Project.objects.for_user(make_user(email=OTHER_OWNER)).get()
    mine, theirs = expiring_key(project, "Mine"), expiring_key(theirs_project, "Theirs")
    now = timezone.now()

    deleting, go, pid, failures = paused_in_another_thread(
        monkeypatch,
        account_services.project_deletion,
        "changed",  # its last step: keys revoked, endpoints stopped, members removed
        lambda: project_delete(project=project, by=user),
    )
    try:
        usage_write(
            [
                usage_call(now - timedelta(minutes=1), key=theirs),
                usage_call(now - timedelta(minutes=1), key=mine),
            ]
        )
        detected = detect()
        results: list[ReminderResult] = []
        reminding, reminder_failures = started_recording(
            lambda: results.append(send_expiry_reminders())
        )
        assert waits_for(pid, reminding)  # at my key's row, which the deletion revoked
    finally:
        go.set()
        finished(deleting)
    finished(reminding)
    assert failures == reminder_failures == []

    assert UsageRecord.objects.count() == 2
    assert detected.failures == 0
    # Theirs was reminded; mine, revoked by the time its claim got its row, was not.
    assert [(r.sent, r.skipped) for r in results] == [(1, 0)]
    assert send_expiry_reminders().sent == 0
    assert [m.to for m in mail.outbox if "expires" in m.subject] == [[OTHER_OWNER]]
    assert ApiKey.objects.get(pk=mine.pk).expiry_week_reminder_sent_at is None
    assert not Flag.objects.filter(project=project).exists()


@pytest.mark.django_db(transaction=True)
def test_a_deletion_never_waits_for_a_detector_batch_that_holds_its_keys_flags(
    project, user, api_key, monkeypatch, short_lock_timeout
):
    """The batch has raised a flag on the project's key, and holds it uncommitted (with the
    cursor) while its other checks run: the deletion does not wait for it (the flag's
    references only share the key and project rows' keys), and the batch ends well."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: the locks are PostgreSQL's.")
    from alerts import detection

    key, _ = api_key
    key.revoke(by=None)
    usage_write([usage_call(timezone.now(), key=key, status=401, error_code="expired_api_key")])
    results = []
    detecting, go, _pid, failures = paused_in_another_thread(
        monkeypatch,
        detection.run,
        "_blocked_networks",  # the check after ended tokens, whose flag is in the batch
        lambda: results.append(detect()),
    )
    try:
        project_delete(project=project, by=user)  # under a 100 ms lock timeout
    finally:
        go.set()
        finished(detecting)
    assert failures == []
    assert [r.failures for r in results] == [0]
    assert Project.objects.get(pk=project.pk).deleted_at is not None


@pytest.mark.django_db(transaction=True)
def test_a_token_reminder_that_waits_for_an_account_deletion_mails_nobody(
    user, make_user, monkeypatch
):
    """The run read the token (and its person's address) before the deletion revoked it;
    its claim waits for the token's row, and once the deletion commits it must see the
    token revoked, not claim it and write to the address the person just gave up."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: the locks are PostgreSQL's.")
    mine = expiring_token(user, "My CLI")
    expiring_token(make_user(email=OTHER_OWNER), "Their CLI")

    deleting, go, pid, failures = paused_in_another_thread(
        monkeypatch,
        account_services.account_deletion.TotpDevice.objects,
        "filter",  # just after its tokens were revoked
        lambda: account_delete(user=user),
    )
    try:
        results: list[ReminderResult] = []
        reminding, reminder_failures = started_recording(
            lambda: results.append(send_expiry_reminders())
        )
        assert waits_for(pid, reminding)  # at my token's row, which the deletion revoked
    finally:
        go.set()
        finished(deleting)
    finished(reminding)
    assert failures == reminder_failures == []

    assert [m.to for m in mail.outbox if "expires" in m.subject] == [[OTHER_OWNER]]
    assert [(r.sent, r.skipped) for r in results] == [(1, 0)]
    assert PersonalAccessToken.objects.get(pk=mine.pk).expiry_reminder_sent_at is None
