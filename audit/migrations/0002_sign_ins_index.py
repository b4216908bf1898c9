"""A person's sign-ins alone, newest first: (actor_id, created_at DESC) WHERE action =
'user.signed_in'. The front page's last sign-ins, and each sign-in's "is this the first?"
and "from a network seen before?", asked for one action of a person; with no index that
knew the action, PostgreSQL read every tenant's audit trail (a parallel seq scan) or
every event of the person. The trail is written by nearly every request while a deploy
migrates: the index is built CONCURRENTLY on PostgreSQL (core/concurrent_index.py).
"""

from django.db import migrations, models

from core.concurrent_index import ConcurrentIndex

BUILD = ConcurrentIndex(
    app_label="audit",
    model_name="AuditEvent",
    index=models.Index(
        fields=["actor", "-created_at"],
        condition=models.Q(action="user.signed_in"),
        name="audit_sign_ins",
    ),
    table="accounts_auditevent",
    columns="(actor_id, created_at DESC) WHERE action = 'user.signed_in'",
)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("audit", "0001_initial"),
    ]

    operations = [BUILD.operation()]
