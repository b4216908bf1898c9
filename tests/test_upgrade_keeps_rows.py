"""A database made before the apps were split upgrades in place, every row where it was.

AuditEvent (accounts → audit), IdempotencyRecord (apikeys → api), the usage log and its
roll-ups (apikeys → usage) and the alerts' tables (apikeys → alerts) moved in Django's
state only. This migrates a database back to the last migrations before the split, fills
it through the models as they were then, migrates forward, and reads every row back
through the models as they are now. On PostgreSQL the usage log is the partitioned table.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from alerts.models import DetectionCursor, Flag, KeyNetwork
from api.models import IdempotencyRecord
from apikeys.models import ApiKey
from audit.models import AuditEvent
from usage.models import UnattributedCalls, UsageHour, UsageIp, UsageRecord

BEFORE_THE_SPLIT = [
    ("accounts", "0003_audit_actor_index"),
    ("apikeys", "0009_usage_partitions"),
    ("agents", "0003_agent_name_no_trailing_newline"),
]
MOVED_APPS = ("audit", "api", "usage", "alerts")


def migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection)  # a fresh view of what is applied now


def latest() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_a_database_from_before_the_split_upgrades_with_every_row_in_place():
    now = datetime.now(UTC).replace(microsecond=0)
    executor = migrate([*BEFORE_THE_SPLIT, *((app, None) for app in MOVED_APPS)])
    old = executor.loader.project_state(BEFORE_THE_SPLIT).apps
    try:
        user = old.get_model("accounts", "User").objects.create(email="old@example.com")
        project = old.get_model("accounts", "Project").objects.create(name="Old", slug="old")
        key = old.get_model("apikeys", "ApiKey").objects.create(
            project=project, name="Old key", token_hash="h" * 64, hint="reminix_sk_abcd…wxyz"
        )
        old.get_model("accounts", "AuditEvent").objects.create(
            project=project, actor=user, actor_email=user.email, action="api_key.created"
        )
        old.get_model("apikeys", "IdempotencyRecord").objects.create(
            project=project, key="retry-1", fingerprint="f" * 64, status=200, body="{}"
        )
        old.get_model("apikeys", "UsageRecord").objects.create(
            created_at=now,
            project=project,
            api_key=key,
            token_kind="api_key",
            method="POST",
            path="/v1/agents/my-agent/invoke",
            status=200,
            outcome="ok",
            latency_us=1500,
            ip="203.0.113.7",
            request_id="req_from_before",
        )
        hour = now.replace(minute=0, second=0)
        old.get_model("apikeys", "UsageHour").objects.create(
            project=project, api_key=key, hour=hour, requests=1, ok=1
        )
        old.get_model("apikeys", "UsageIp").objects.create(
            project=project, api_key=key, ip="203.0.113.7", first_seen=now, last_seen=now
        )
        old.get_model("apikeys", "UnattributedCalls").objects.create(
            hour=hour, error_code="invalid_api_key", count=3
        )
        old.get_model("apikeys", "Flag").objects.create(
            project=project,
            api_key=key,
            kind="new_network",
            severity="medium",
            dedupe_key="old:new_network",
            summary="Used from a new network",
            first_seen=now - timedelta(minutes=5),
            last_seen=now,
        )
        old.get_model("apikeys", "KeyNetwork").objects.create(
            api_key=key, network="203.0.113.0/24", first_seen=now
        )
        old.get_model("apikeys", "DetectionCursor").objects.create(name="usage", last_id=41)
    finally:
        migrate(latest())

    api_key = ApiKey.objects.get(name="Old key")
    assert AuditEvent.objects.get().action == "api_key.created"
    assert IdempotencyRecord.objects.get().key == "retry-1"
    record = UsageRecord.objects.get()
    assert (record.request_id, record.api_key, record.created_at) == (
        "req_from_before",
        api_key,
        now,
    )
    assert UsageHour.objects.get().requests == 1
    assert UsageIp.objects.get().ip == "203.0.113.7"
    assert UnattributedCalls.objects.get().count == 3
    assert Flag.objects.get().api_key == api_key
    assert KeyNetwork.objects.get().network == "203.0.113.0/24"
    assert DetectionCursor.objects.get().last_id == 41
    # The tables kept their names, so a new row lands beside the old ones.
    assert UsageRecord._meta.db_table == "apikeys_usagerecord"
    assert AuditEvent._meta.db_table == "accounts_auditevent"
