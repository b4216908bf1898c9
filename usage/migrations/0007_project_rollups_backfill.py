# The project overview's roll-ups, filled from the log as it stands: one GROUP BY per
# roll-up, the same groups the writer keeps (usage/writer.py). On PostgreSQL the usage
# write lock is held meanwhile, so a batch written during the backfill waits for it and
# is then counted by the writer, never twice and never not at all. On PostgreSQL each
# roll-up is one INSERT … SELECT … GROUP BY in the database (10^7 calls: two minutes);
# on SQLite the groups pass through Python.

from datetime import UTC

from django.db import migrations
from django.db.models import Count, Max, Min, Q
from django.db.models.functions import TruncDay, TruncHour

BATCH = 5000
_WRITE_LOCK = 0x7573616765  # usage/writer.py's lock


CALLS_SQL = """
INSERT INTO {table} (project_id, start, token_kind, api_key_id, personal_token_id, outcome,
                     agent, requests, without_address, last_call)
SELECT project_id, date_trunc('{unit}', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
       token_kind, api_key_id, personal_token_id, outcome, agent, count(*),
       count(*) FILTER (WHERE ip IS NULL), max(created_at)
FROM apikeys_usagerecord WHERE project_id IS NOT NULL
GROUP BY 1, 2, 3, 4, 5, 6, 7
"""
ADDRESSES_SQL = """
INSERT INTO {table} (project_id, start, ip, outcome, requests, first_seen, last_seen)
SELECT project_id, date_trunc('{unit}', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
       ip, outcome, count(*), min(created_at), max(created_at)
FROM apikeys_usagerecord WHERE project_id IS NOT NULL AND ip IS NOT NULL
GROUP BY 1, 2, 3, 4
"""


def backfill(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_WRITE_LOCK])
            # A big log takes longer than the statement timeout the app runs with.
            cursor.execute("SET LOCAL statement_timeout = 0")
            for unit in ("hour", "day"):
                cursor.execute(CALLS_SQL.format(table=f"usage_project{unit}", unit=unit))
                cursor.execute(ADDRESSES_SQL.format(table=f"usage_projectaddress{unit}", unit=unit))
        return
    calls = apps.get_model("usage", "UsageRecord").objects.filter(project__isnull=False)
    for name, truncate in (("Hour", TruncHour), ("Day", TruncDay)):
        model = apps.get_model("usage", f"ProjectUsage{name}")
        groups = (
            calls.values(
                "project_id",
                "token_kind",
                "api_key_id",
                "personal_token_id",
                "outcome",
                "agent",
                start=truncate("created_at", tzinfo=UTC),
            )
            .annotate(
                n=Count("id"), no_ip=Count("id", filter=Q(ip__isnull=True)), last=Max("created_at")
            )
            .order_by()
        )
        _insert(
            model,
            (
                model(
                    project_id=g["project_id"],
                    start=g["start"],
                    token_kind=g["token_kind"],
                    api_key_id=g["api_key_id"],
                    personal_token_id=g["personal_token_id"],
                    outcome=g["outcome"],
                    agent=g["agent"],
                    requests=g["n"],
                    without_address=g["no_ip"],
                    last_call=g["last"],
                )
                for g in groups.iterator(chunk_size=BATCH)
            ),
        )
        model = apps.get_model("usage", f"ProjectAddress{name}")
        groups = (
            calls.filter(ip__isnull=False)
            .values("project_id", "ip", "outcome", start=truncate("created_at", tzinfo=UTC))
            .annotate(n=Count("id"), first=Min("created_at"), last=Max("created_at"))
            .order_by()
        )
        _insert(
            model,
            (
                model(
                    project_id=g["project_id"],
                    start=g["start"],
                    ip=g["ip"],
                    outcome=g["outcome"],
                    requests=g["n"],
                    first_seen=g["first"],
                    last_seen=g["last"],
                )
                for g in groups.iterator(chunk_size=BATCH)
            ),
        )


def _insert(model, objects):
    batch = []
    for obj in objects:
        batch.append(obj)
        if len(batch) == BATCH:
            model.objects.bulk_create(batch)
            batch = []
    if batch:
        model.objects.bulk_create(batch)


def forget(apps, schema_editor):
    for name in ("ProjectUsageHour", "ProjectUsageDay", "ProjectAddressHour", "ProjectAddressDay"):
        apps.get_model("usage", name).objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("usage", "0006_project_rollups")]

    operations = [migrations.RunPython(backfill, forget)]
