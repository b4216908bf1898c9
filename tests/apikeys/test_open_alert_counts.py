"""The key list's "open alerts" beside each key reads the key's open alerts, not every
alert it ever had.

Counted through a join of all its flags with the acknowledged ones filtered out at the
count, the list read every flag of the project (in practice PostgreSQL hashed the whole
flag table, every tenant's: 45,000 acknowledged alerts here for the 5,000 open, and the
history only grows), on every load of the key list.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from alerts.models import Flag
from apikeys.models import ApiKey
from apikeys.services import api_key_create
from tests.plans import plan_nodes, rows_read


def flag_rows_read(query) -> int:
    """How many rows the plan took from the flag table (kept and filtered out)."""
    return rows_read(plan_nodes(query, analyze=True), "apikeys_flag")


def flags(key: ApiKey, *, open: int, acknowledged: int) -> list[Flag]:
    now = timezone.now()
    return [
        Flag(
            project=key.project,
            api_key=key,
            kind=Flag.Kind.NEW_NETWORK,
            severity=Flag.Severity.LOW,
            dedupe_key=f"nn:{key.pk}:{n}",
            summary="Used from a new network",
            first_seen=now - timedelta(minutes=n),
            last_seen=now - timedelta(minutes=n),
            acknowledged_at=now if n >= open else None,
        )
        for n in range(open + acknowledged)
    ]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_the_key_lists_open_alert_counts_read_only_each_keys_open_alerts(user, project):
    busy, _ = api_key_create(project=project, name="busy", created_by=user)
    other, _ = api_key_create(project=project, name="other", created_by=user)
    quiet, _ = api_key_create(project=project, name="quiet", created_by=user)
    Flag.objects.bulk_create(
        flags(busy, open=3, acknowledged=60) + flags(other, open=5, acknowledged=0)
    )
    with connection.cursor() as cursor:
        # The planner told what is there (else it guesses at an empty table, where any
        # index costs the same).
        cursor.execute("ANALYZE apikeys_flag")

    listed = ApiKey.objects.for_project(project).with_open_alert_counts()
    assert {k.name: k.open_flags for k in listed} == {"busy": 3, "other": 5, "quiet": 0}
    # One key's count (one loop of the plan: its figures are not averaged over keys).
    assert flag_rows_read(listed.filter(pk=busy.pk)) == 3
