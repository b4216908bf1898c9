"""An index on when each execution ran, for prune_executions (agents/retention.py): the
executions before the retention's cut-off are deleted oldest first along it, a batch at a
time, and the last read stops at the first one kept instead of walking the table. The
table holds every run of every project: the index is built CONCURRENTLY on PostgreSQL
(core/concurrent_index.py).
"""

from django.db import migrations, models

from core.concurrent_index import ConcurrentIndex

BUILD = ConcurrentIndex(
    app_label="agents",
    model_name="Execution",
    index=models.Index(fields=["created_at"], name="exec_created_at"),
    table="agents_execution",
    columns="(created_at)",
)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("agents", "0006_descriptions_without_secrets"),
    ]

    operations = [BUILD.operation()]
