"""IdempotencyRecord moves here from apikeys, in Django's state only: its table keeps its name
(apikeys_idempotencyrecord), its rows and its constraint. Nothing is done to the database."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('accounts', '0001_initial'),
        ('apikeys', '0009_usage_partitions'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='IdempotencyRecord',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('key', models.CharField(max_length=255)),
                        ('fingerprint', models.CharField(max_length=64)),
                        ('status', models.PositiveSmallIntegerField(null=True)),
                        ('body', models.TextField(blank=True)),
                        ('redacted', models.BooleanField(default=False)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.project')),
                    ],
                    options={
                        'db_table': 'apikeys_idempotencyrecord',
                        'constraints': [models.UniqueConstraint(fields=('project', 'key'), name='idempotency_unique_key')],
                    },
                ),
                ],
        ),
    ]
