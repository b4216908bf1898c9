"""An endpoint's deliveries newest first in their exact order, (endpoint, created_at DESC,
id DESC), in place of (endpoint, created_at DESC): asked for its newest delivery by
(created_at, id), PostgreSQL found no index in that order and walked the age index of
every tenant's deliveries from the newest, skipping all other endpoints' (the webhook
list of a project with no deliveries read all 200,000 of another's, three times).

The table is written by every scheduler while a deploy migrates: the new index is built
CONCURRENTLY on PostgreSQL (core/concurrent_index.py) and the old one, whose columns it
begins with, dropped CONCURRENTLY after it.
"""

from typing import Any

from django.db import migrations, models

from core.concurrent_index import ConcurrentIndex

OLD = models.Index(fields=["endpoint", "-created_at"], name="webhookdelivery_log")
BUILD = ConcurrentIndex(
    app_label="webhooks",
    model_name="WebhookDelivery",
    index=models.Index(
        fields=["endpoint", "-created_at", "-id"], name="webhookdelivery_log_newest"
    ),
    table="webhooks_webhookdelivery",
    columns="(endpoint_id, created_at DESC, id DESC)",
)


def drop_old(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.remove_index(apps.get_model("webhooks", "WebhookDelivery"), OLD)
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = 0")
        try:
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {OLD.name}")
        finally:
            cursor.execute("RESET lock_timeout")


def restore_old(apps: Any, schema_editor: Any) -> None:
    schema_editor.add_index(apps.get_model("webhooks", "WebhookDelivery"), OLD)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("webhooks", "0004_endpoint_url_encrypted"),
    ]

    operations = [
        BUILD.operation(),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="webhookdelivery", name=OLD.name)
            ],
            database_operations=[migrations.RunPython(drop_old, restore_old)],
        ),
    ]
