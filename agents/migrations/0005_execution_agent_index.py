"""An index on the executions of one agent, newest first (project, agent_name, -id), for
the execution log filtered by an agent or read by a token scoped to some agents: without
it, each page read every execution of the project newer than the page.

The table holds every run of every project: on PostgreSQL the index is built CONCURRENTLY
(calls are logged meanwhile; the migration is not atomic for that reason), with no
statement or lock timeout for the build, as api/migrations/0003 does and for its reasons:
a build that failed leaves an invalid index of the name, dropped and built again rather
than taken for the index. Elsewhere (SQLite) it is an ordinary CREATE INDEX.
"""

from django.db import migrations, models

INDEX = models.Index(fields=["project", "agent_name", "-id"], name="exec_project_agent_newest")


def create_index(apps, schema_editor):
    model = apps.get_model("agents", "Execution")
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.add_index(model, INDEX)
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 0")
        cursor.execute("SET lock_timeout = 0")
        try:
            cursor.execute(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = 'exec_project_agent_newest'"
            )
            found = cursor.fetchone()
            if found is not None and not found[0]:
                cursor.execute("DROP INDEX CONCURRENTLY exec_project_agent_newest")
            cursor.execute(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS exec_project_agent_newest "
                "ON agents_execution (project_id, agent_name, id DESC)"
            )
        finally:
            cursor.execute("RESET statement_timeout")
            cursor.execute("RESET lock_timeout")


def drop_index(apps, schema_editor):
    model = apps.get_model("agents", "Execution")
    schema_editor.remove_index(model, INDEX)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("agents", "0004_execution_public_id"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="execution", index=INDEX)],
            database_operations=[migrations.RunPython(create_index, drop_index)],
        ),
    ]
