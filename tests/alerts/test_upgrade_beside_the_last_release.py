"""During an upgrade the last release still runs beside this one (its scheduler's
detection, its workers) and writes rows without the columns this release added:
alerts/migrations/0011 (TokenNetwork.at_least) and 0012 (Flag.email_attempts) gave them a
default in Django alone, so each such insert failed (NOT NULL) and the old detection run
raised no alert. A default in the database keeps its rows written, as the project's other
new columns do (usage/migrations/0011, api/migrations/0002)."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection, models
from django.utils import timezone

from alerts.models import Flag, TokenNetwork
from apikeys.services import personal_token_create


def _insert_as_the_last_release(model: type[models.Model], values: dict[str, object]) -> None:
    """`values` inserted by column, as code that knows only those columns does."""
    q = connection.ops.quote_name
    columns = ", ".join(q(column) for column in values)
    marks = ", ".join(["%s"] * len(values))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {q(model._meta.db_table)} ({columns}) VALUES ({marks})",  # noqa: S608
            list(values.values()),
        )


def test_a_flag_written_without_its_email_columns_is_kept(project, api_key):
    key, _ = api_key
    now = timezone.now()
    _insert_as_the_last_release(
        Flag,
        {
            "project_id": project.pk,
            "api_key_id": key.pk,
            "kind": Flag.Kind.NEW_NETWORK,
            "severity": Flag.Severity.HIGH,
            "dedupe_key": "written-by-the-last-release",
            "summary": "Used from a new network",
            "evidence": "{}",
            "occurrences": 1,
            "first_seen": now - timedelta(minutes=5),
            "last_seen": now,
            "created_at": now,
        },
    )
    flag = Flag.objects.get(dedupe_key="written-by-the-last-release")
    assert (flag.email_attempts, flag.email_retry_at) == (0, None)


def test_a_token_network_written_without_at_least_is_kept(user):
    token, _ = personal_token_create(user=user, name="Deploy")
    _insert_as_the_last_release(
        TokenNetwork,
        {
            "personal_token_id": token.pk,
            "network": "203.0.113.0/24",
            "first_seen": timezone.now(),
            "new": True,
        },
    )
    kept = TokenNetwork.objects.get(personal_token=token)
    assert kept.at_least is False
    # 0014's, for the same reason.
    assert (kept.notice_attempts, kept.notice_retry_at) == (0, None)
