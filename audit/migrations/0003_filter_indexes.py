"""A project's audit trail by one actor's address (in any case) and by one address acted
from, newest first in the page's order: without them, a filter that matched little read
the whole trail (by its time index, every tenant's) to fill a page. The trail is written
by nearly every request while a deploy migrates: built CONCURRENTLY on PostgreSQL
(core/concurrent_index.py).
"""

from django.db import migrations, models
from django.db.models import F
from django.db.models.functions import Upper

from core.concurrent_index import ConcurrentIndex

BY_ACTOR = ConcurrentIndex(
    app_label="audit",
    model_name="AuditEvent",
    index=models.Index(
        F("project"),
        Upper("actor_email"),
        F("created_at").desc(),
        F("id").desc(),
        name="audit_project_actor_time",
    ),
    table="accounts_auditevent",
    columns="(project_id, UPPER(actor_email), created_at DESC, id DESC)",
)
BY_ADDRESS = ConcurrentIndex(
    app_label="audit",
    model_name="AuditEvent",
    index=models.Index(
        fields=["project", "ip_address", "-created_at", "-id"], name="audit_project_ip_time"
    ),
    table="accounts_auditevent",
    columns="(project_id, ip_address, created_at DESC, id DESC)",
)
# The tests of the CONCURRENTLY build (tests/core/test_concurrent_index.py) take one.
BUILD = BY_ACTOR


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("audit", "0002_sign_ins_index"),
    ]

    operations = [BY_ACTOR.operation(), BY_ADDRESS.operation()]
