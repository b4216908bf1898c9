"""IdempotencyRecord now belongs to the api app (api/migrations/0001_initial.py). Django's
state forgets it here; the table apikeys_idempotencyrecord and its rows stay as they are."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("apikeys", "0009_usage_partitions"),
        ("api", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="IdempotencyRecord")],
        ),
    ]
