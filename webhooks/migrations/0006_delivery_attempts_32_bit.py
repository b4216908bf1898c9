"""A delivery's attempts as a 32-bit count: each Retry now of a delivery that gave up adds
an attempt, with no end, and the 32,768th failed the sending run's write on PostgreSQL,
leaving the delivery marked as being sent. On PostgreSQL the deliveries table is rewritten
under its lock; deliveries are pruned daily (prune_webhook_deliveries)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0005_delivery_log_newest_index"),
    ]

    operations = [
        migrations.AlterField(
            model_name="webhookdelivery",
            name="attempts",
            field=models.PositiveIntegerField(default=0),
        ),
    ]
