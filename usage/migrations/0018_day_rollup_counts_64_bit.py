"""A project's per-day roll-ups count in 64 bits (ProjectUsageDay.requests and
.without_address, ProjectAddressDay.requests): on PostgreSQL a 32-bit count broke its range
at 2,147,483,647 calls of one group in a UTC day (25,000 a second all day, a flood on one
key or from one address), and the ingest then dropped that group's later calls from the
log (usage/models.py). The hourly roll-ups stay 32-bit: an hour would need 600,000 a
second.

On PostgreSQL each table changes in one statement, so it is rewritten once, under a lock
that holds up the writer's roll-ups for as long (the day tables hold a row per group and
day: far fewer than the hour tables or the log). On SQLite an integer is 64-bit whatever
the column's declared type: nothing to do there."""

from django.db import migrations, models

WIDEN = (
    'ALTER TABLE "usage_projectday" '
    'ALTER COLUMN "requests" TYPE bigint, ALTER COLUMN "without_address" TYPE bigint',
    'ALTER TABLE "usage_projectaddressday" ALTER COLUMN "requests" TYPE bigint',
)
NARROW = (
    'ALTER TABLE "usage_projectday" '
    'ALTER COLUMN "requests" TYPE integer, ALTER COLUMN "without_address" TYPE integer',
    'ALTER TABLE "usage_projectaddressday" ALTER COLUMN "requests" TYPE integer',
)


def _on_postgresql(statements: tuple[str, ...]):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0017_usageip_counts_64_bit"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunPython(_on_postgresql(WIDEN), _on_postgresql(NARROW)),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="projectusageday",
                    name="requests",
                    field=models.PositiveBigIntegerField(default=0),
                ),
                migrations.AlterField(
                    model_name="projectusageday",
                    name="without_address",
                    field=models.PositiveBigIntegerField(default=0),
                ),
                migrations.AlterField(
                    model_name="projectaddressday",
                    name="requests",
                    field=models.PositiveBigIntegerField(default=0),
                ),
            ],
        ),
    ]
