"""A project's audit trail narrowed to one key or token (`?target=apikey:42`, linked from
the key's usage page), newest first in the page's order: without it, a key with few events
among the project's many read the whole trail to fill a page. Built CONCURRENTLY on
PostgreSQL, as 0003's: the trail is written while a deploy migrates."""

from django.db import migrations, models

from core.concurrent_index import ConcurrentIndex

BY_TARGET = ConcurrentIndex(
    app_label="audit",
    model_name="AuditEvent",
    index=models.Index(
        fields=["project", "target_type", "target_id", "-created_at", "-id"],
        name="audit_project_target_time",
    ),
    table="accounts_auditevent",
    columns="(project_id, target_type, target_id, created_at DESC, id DESC)",
)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("audit", "0003_filter_indexes"),
    ]

    operations = [BY_TARGET.operation()]
