"""A key's counts of calls from one address (UsageIp.requests and .admitted) are 64-bit: the
row lasts as long as the address keeps calling, so its counts grow without end, and on
PostgreSQL a 32-bit count broke its range at 2,147,483,647 calls; every later call from the
address was then dropped by the ingest (usage/models.py).

On PostgreSQL both columns change in one statement, so the table is rewritten once (two
ALTER FIELDs rewrite it twice, under a lock that holds up the ingest's writes to it). On
SQLite an integer is 64-bit whatever the column's declared type: nothing to do there."""

from django.db import migrations, models

WIDEN = (
    'ALTER TABLE "apikeys_usageip" '
    'ALTER COLUMN "requests" TYPE bigint, ALTER COLUMN "admitted" TYPE bigint'
)
NARROW = (
    'ALTER TABLE "apikeys_usageip" '
    'ALTER COLUMN "requests" TYPE integer, ALTER COLUMN "admitted" TYPE integer'
)


def _on_postgresql(sql: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0016_personal_token_failed_calls_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunPython(_on_postgresql(WIDEN), _on_postgresql(NARROW)),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="usageip",
                    name="admitted",
                    field=models.PositiveBigIntegerField(db_default=0, default=0),
                ),
                migrations.AlterField(
                    model_name="usageip",
                    name="requests",
                    field=models.PositiveBigIntegerField(default=0),
                ),
            ],
        ),
    ]
