"""The usage log and its roll-ups move here from apikeys, in Django's state only: the tables
keep their names (apikeys_usagerecord, apikeys_usagehour, apikeys_usageip,
apikeys_unattributedcalls), their rows, their indexes and, on PostgreSQL, the usage log's
daily partitions. Nothing is done to the database."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('accounts', '0001_initial'),
        ('apikeys', '0010_idempotencyrecord_moved_to_api'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='UnattributedCalls',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('hour', models.DateTimeField()),
                        ('error_code', models.CharField(max_length=40)),
                        ('count', models.PositiveIntegerField(default=0)),
                    ],
                    options={
                        'db_table': 'apikeys_unattributedcalls',
                        'constraints': [models.UniqueConstraint(fields=('hour', 'error_code'), name='unattributed_unique')],
                    },
                ),
                migrations.CreateModel(
                    name='UsageHour',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('hour', models.DateTimeField()),
                        ('requests', models.PositiveIntegerField(default=0)),
                        ('ok', models.PositiveIntegerField(default=0)),
                        ('client_errors', models.PositiveIntegerField(default=0)),
                        ('auth_failures', models.PositiveIntegerField(default=0)),
                        ('revoked_key_uses', models.PositiveIntegerField(default=0)),
                        ('server_errors', models.PositiveIntegerField(default=0)),
                        ('latency_us_total', models.BigIntegerField(default=0)),
                        ('api_key', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='usage_hours', to='apikeys.apikey')),
                        ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.project')),
                    ],
                    options={
                        'db_table': 'apikeys_usagehour',
                        'constraints': [models.UniqueConstraint(fields=('api_key', 'hour'), name='usagehour_unique_key_hour')],
                    },
                ),
                migrations.CreateModel(
                    name='UsageIp',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('ip', models.GenericIPAddressField()),
                        ('first_seen', models.DateTimeField()),
                        ('last_seen', models.DateTimeField()),
                        ('requests', models.PositiveIntegerField(default=0)),
                        ('api_key', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='usage_ips', to='apikeys.apikey')),
                        ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.project')),
                    ],
                    options={
                        'db_table': 'apikeys_usageip',
                        'constraints': [models.UniqueConstraint(fields=('api_key', 'ip'), name='usageip_unique_key_ip')],
                    },
                ),
                migrations.CreateModel(
                    name='UsageRecord',
                    fields=[
                        ('id', models.BigAutoField(primary_key=True, serialize=False)),
                        ('created_at', models.DateTimeField()),
                        ('token_kind', models.CharField(max_length=32)),
                        ('method', models.CharField(max_length=8)),
                        ('agent', models.CharField(blank=True, max_length=64)),
                        ('path', models.CharField(max_length=255)),
                        ('status', models.PositiveSmallIntegerField()),
                        ('error_code', models.CharField(blank=True, max_length=40)),
                        ('outcome', models.CharField(choices=[('ok', 'Succeeded'), ('client_error', 'Client error'), ('auth_failure', 'Auth or permission failure'), ('revoked_key', 'Revoked or expired key'), ('server_error', 'Server error')], max_length=16)),
                        ('latency_us', models.PositiveIntegerField()),
                        ('ip', models.GenericIPAddressField(blank=True, null=True)),
                        ('user_agent', models.CharField(blank=True, max_length=255)),
                        ('request_id', models.CharField(max_length=40)),
                        ('api_key', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='usage', to='apikeys.apikey')),
                        ('client_token', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='usage', to='apikeys.clienttoken')),
                        ('personal_token', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='usage', to='apikeys.personalaccesstoken')),
                        ('project', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.project')),
                    ],
                    options={
                        'db_table': 'apikeys_usagerecord',
                        'indexes': [models.Index(fields=['api_key', '-created_at', '-id'], name='usage_key_time'), models.Index(fields=['project', '-created_at', '-id'], name='usage_project_time'), models.Index(condition=models.Q(('outcome', 'ok'), _negated=True), fields=['api_key', '-created_at', '-id'], name='usage_key_errors_time')],
                    },
                ),
                ],
        ),
    ]
