"""The calls to one agent, newest first, of a key and of a project: the log filtered by an
agent (what a new-agent alert opens). Without them a page passes over the key's (or
project's) calls to its usual agents, millions of them, to find the few to another.

The usage log is written by every API call and partitioned by day on PostgreSQL: each
index is made on the parent and built CONCURRENTLY partition by partition, so calls are
written meanwhile and a big log's build outlasts no statement timeout
(core/concurrent_index.py); every partition made later gets its own copy.
"""

from django.db import migrations, models

from core.concurrent_index import ConcurrentIndex

TABLE = "apikeys_usagerecord"
BY_KEY = ConcurrentIndex(
    app_label="usage",
    model_name="UsageRecord",
    index=models.Index(
        fields=["api_key", "agent", "-created_at", "-id"], name="usage_key_agent_time"
    ),
    table=TABLE,
    columns="(api_key_id, agent, created_at DESC, id DESC)",
)
BY_PROJECT = ConcurrentIndex(
    app_label="usage",
    model_name="UsageRecord",
    index=models.Index(
        fields=["project", "agent", "-created_at", "-id"], name="usage_project_agent_time"
    ),
    table=TABLE,
    columns="(project_id, agent, created_at DESC, id DESC)",
)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("usage", "0008_personal_token_index"),
    ]

    operations = [BY_KEY.operation(), BY_PROJECT.operation()]
