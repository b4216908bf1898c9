"""An alert's occurrences as a 64-bit count: an open alert adds each detection run's
findings until someone acknowledges it, and a key refused for years (or a flood of refused
calls) took a 32-bit count past 2**31, where every later update of the alert failed and was
skipped. On PostgreSQL the alerts table is rewritten under its lock: one row an alert."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0014_tokennetwork_notice_attempts"),
    ]

    operations = [
        migrations.AlterField(
            model_name="flag",
            name="occurrences",
            field=models.PositiveBigIntegerField(default=1),
        ),
    ]
