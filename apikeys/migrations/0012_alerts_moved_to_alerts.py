"""Flags and the detector's bookkeeping now belong to the alerts app (alerts/migrations/0001).
Django's state forgets them here; their tables and rows stay as they are."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("apikeys", "0011_usage_moved_to_usage"),
        ("alerts", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="DetectionCursor"),
                migrations.DeleteModel(name="Flag"),
                migrations.DeleteModel(name="KeyNetwork"),
            ],
        ),
    ]
