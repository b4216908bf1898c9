"""The usage log and its roll-ups now belong to the usage app (usage/migrations/0001).
Django's state forgets them here; their tables, rows and partitions stay as they are."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("apikeys", "0010_idempotencyrecord_moved_to_api"),
        ("usage", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="UnattributedCalls"),
                migrations.DeleteModel(name="UsageHour"),
                migrations.DeleteModel(name="UsageIp"),
                migrations.DeleteModel(name="UsageRecord"),
            ],
        ),
    ]
