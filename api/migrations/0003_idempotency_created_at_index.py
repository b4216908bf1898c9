"""An index on IdempotencyRecord.created_at, for the daily prune.

The table holds a day of every project's retried writes: on PostgreSQL the index is built
CONCURRENTLY (writes go on meanwhile; the migration is not atomic for that reason), with
no statement timeout for the build and no lock timeout either: such a build waits for
every transaction that is writing the table when it starts, and one still open after the
connections' lock_timeout would fail the deploy. A build that fails leaves an index of
the name marked invalid, which PostgreSQL keeps up but never reads: it is dropped and
built again, not taken for the index (IF NOT EXISTS would). Elsewhere (SQLite) it is an
ordinary CREATE INDEX.
"""

from django.db import migrations, models

INDEX = models.Index(fields=["created_at"], name="idempotency_created_at")


def create_index(apps, schema_editor):
    model = apps.get_model("api", "IdempotencyRecord")
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.add_index(model, INDEX)
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 0")
        cursor.execute("SET lock_timeout = 0")
        try:
            cursor.execute(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = 'idempotency_created_at'"
            )
            found = cursor.fetchone()
            if found is not None and not found[0]:
                cursor.execute("DROP INDEX CONCURRENTLY idempotency_created_at")
            cursor.execute(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS idempotency_created_at "
                "ON apikeys_idempotencyrecord (created_at)"
            )
        finally:
            cursor.execute("RESET statement_timeout")
            cursor.execute("RESET lock_timeout")


def drop_index(apps, schema_editor):
    model = apps.get_model("api", "IdempotencyRecord")
    schema_editor.remove_index(model, INDEX)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("accounts", "0013_passkeys"),
        ("api", "0002_idempotency_record_caller"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="idempotencyrecord", index=INDEX)],
            database_operations=[migrations.RunPython(create_index, drop_index)],
        ),
    ]
