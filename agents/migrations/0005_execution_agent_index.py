"""An index on the executions of one agent, newest first (project, agent_name, -id), for
the execution log filtered by an agent or read by a token scoped to some agents: without
it, each page read every execution of the project newer than the page. The table holds
every run of every project: the index is built CONCURRENTLY on PostgreSQL, waiting out
writes in progress and building again over an invalid one (core/concurrent_index.py).
"""

from django.db import migrations, models

from core.concurrent_index import ConcurrentIndex

INDEX = models.Index(fields=["project", "agent_name", "-id"], name="exec_project_agent_newest")
BUILD = ConcurrentIndex(
    app_label="agents",
    model_name="Execution",
    index=INDEX,
    table="agents_execution",
    columns="(project_id, agent_name, id DESC)",
)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("agents", "0004_execution_public_id"),
    ]

    operations = [BUILD.operation()]
