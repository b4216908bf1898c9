"""Flags and the detector's bookkeeping move here from apikeys, in Django's state only: the
tables keep their names (apikeys_flag, apikeys_keynetwork, apikeys_detectioncursor), their
rows and constraints. Nothing is done to the database."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('accounts', '0001_initial'),
        ('apikeys', '0011_usage_moved_to_usage'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='DetectionCursor',
                    fields=[
                        ('name', models.CharField(max_length=32, primary_key=True, serialize=False)),
                        ('last_id', models.BigIntegerField(default=0)),
                        ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ],
                    options={
                        'db_table': 'apikeys_detectioncursor',
                    },
                ),
                migrations.CreateModel(
                    name='Flag',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(choices=[('ended_token_used', 'Revoked or expired token still in use'), ('new_network', 'Used from a new network'), ('volume_spike', 'Volume spike'), ('auth_failure_burst', 'Burst of auth or permission failures'), ('client_token_many_ips', 'Client token used from many addresses'), ('unused_key', 'Unused for 90 days')], max_length=32)),
                        ('severity', models.CharField(choices=[('high', 'High'), ('medium', 'Medium'), ('low', 'Low')], max_length=8)),
                        ('dedupe_key', models.CharField(max_length=200)),
                        ('summary', models.CharField(max_length=300)),
                        ('evidence', models.JSONField(default=dict)),
                        ('occurrences', models.PositiveIntegerField(default=1)),
                        ('first_seen', models.DateTimeField()),
                        ('last_seen', models.DateTimeField()),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('emailed_at', models.DateTimeField(blank=True, null=True)),
                        ('acknowledged_at', models.DateTimeField(blank=True, null=True)),
                        ('acknowledged_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('api_key', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='flags', to='apikeys.apikey')),
                        ('client_token', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='flags', to='apikeys.clienttoken')),
                        ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='flags', to='accounts.project')),
                    ],
                    options={
                        'db_table': 'apikeys_flag',
                        'ordering': ['-last_seen', '-id'],
                        'indexes': [models.Index(fields=['project', 'acknowledged_at'], name='flag_project_open')],
                        'constraints': [models.UniqueConstraint(condition=models.Q(('acknowledged_at__isnull', True)), fields=('dedupe_key',), name='flag_one_open_per_finding')],
                    },
                ),
                migrations.CreateModel(
                    name='KeyNetwork',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('network', models.CharField(max_length=64)),
                        ('first_seen', models.DateTimeField()),
                        ('api_key', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='apikeys.apikey')),
                    ],
                    options={
                        'db_table': 'apikeys_keynetwork',
                        'constraints': [models.UniqueConstraint(fields=('api_key', 'network'), name='keynetwork_unique')],
                    },
                ),
                ],
        ),
    ]
