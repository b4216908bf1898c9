"""A PAT's new-network notice that reached nobody is tried again after growing waits
(alerts/token_networks.py, NOTICE_RETRY_WAITS): how many tries it had, and from when the
next may be. notice_attempts has its default in the database too, as at_least (0013): the
last release, still running during an upgrade, inserts token networks without it."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('alerts', '0013_defaults_in_the_database'),
    ]

    operations = [
        migrations.AddField(
            model_name='tokennetwork',
            name='notice_attempts',
            field=models.PositiveSmallIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name='tokennetwork',
            name='notice_retry_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
