"""AuditEvent now belongs to the audit app (audit/migrations/0001_initial.py). Django's
state forgets it here; the table accounts_auditevent and its rows stay as they are."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0003_audit_actor_index"),
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="AuditEvent")],
        ),
    ]
