"""The detector over a deleted project: its revoked keys and client tokens are still tried,
and the log keeps those calls, but nobody can see its alerts any more, so none is raised,
none is emailed, and no webhook is queued for one. Every other project's go on as ever."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.core import mail

from accounts.models import Project
from accounts.services import project_delete
from alerts.detection import detect
from alerts.models import DetectionCursor, Flag
from tests.conftest import usage_call
from usage.models import UsageRecord
from usage.writer import usage_write

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def tried(key, minutes_ago: int = 3):
    return usage_call(
        NOW - timedelta(minutes=minutes_ago), key=key, status=401, error_code="expired_api_key"
    )


def test_a_deleted_projects_keys_still_tried_raise_no_alert(
    api_key, project, user, make_user, make_key
):
    mine, _ = api_key
    other_owner = make_user(email="other-owner@example.com")
    theirs, _ = make_key(Project.objects.for_user(other_owner).get(), name="Theirs")
    theirs.revoke(by=None)
    project_delete(project=project, by=user)
    mail.outbox.clear()

    usage_write([tried(mine), tried(theirs), tried(mine, minutes_ago=2)])
    result = detect(now=NOW)

    assert result.failures == 0
    assert list(Flag.objects.values_list("project_id", flat=True)) == [theirs.project_id]
    assert [m.to for m in mail.outbox] == [["other-owner@example.com"]]
    # Its rows were read all the same: the cursor is past them.
    assert DetectionCursor.objects.get().last_id == UsageRecord.objects.latest("id").id
