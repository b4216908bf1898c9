"""An index on IdempotencyRecord.created_at, for the daily prune. The table holds a day of
every project's retried writes: the index is built CONCURRENTLY on PostgreSQL, waiting out
writes in progress and building again over an invalid one (core/concurrent_index.py).
"""

from django.db import migrations, models

from core.concurrent_index import ConcurrentIndex

INDEX = models.Index(fields=["created_at"], name="idempotency_created_at")
BUILD = ConcurrentIndex(
    app_label="api",
    model_name="IdempotencyRecord",
    index=INDEX,
    table="apikeys_idempotencyrecord",
    columns="(created_at)",
)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("accounts", "0013_passkeys"),
        ("api", "0002_idempotency_record_caller"),
    ]

    operations = [BUILD.operation()]
