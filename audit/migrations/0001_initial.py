"""AuditEvent moves here from accounts, in Django's state only: its table keeps its name
(accounts_auditevent), its rows and its indexes. Nothing is done to the database."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('accounts', '0003_audit_actor_index'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='AuditEvent',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ('actor_email', models.CharField(blank=True, max_length=254)),
                        ('action', models.CharField(max_length=64)),
                        ('target_type', models.CharField(blank=True, max_length=32)),
                        ('target_id', models.CharField(blank=True, max_length=64)),
                        ('target_label', models.CharField(blank=True, max_length=200)),
                        ('ip_address', models.GenericIPAddressField(blank=True, null=True)),
                        ('metadata', models.JSONField(blank=True, default=dict)),
                        ('actor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='audit_events', to=settings.AUTH_USER_MODEL)),
                        ('project', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='audit_events', to='accounts.project')),
                    ],
                    options={
                        'db_table': 'accounts_auditevent',
                        'ordering': ['-created_at', '-id'],
                        'indexes': [models.Index(fields=['project', '-created_at'], name='audit_project_time'), models.Index(fields=['actor', '-created_at'], name='audit_actor_time')],
                    },
                ),
                ],
        ),
    ]
