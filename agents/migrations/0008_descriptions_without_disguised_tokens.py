"""A token kept in an agent's description before descriptions refused one with spaces
inside it or without its prefix (core.redact.holds_token) is cut from it, as 0006 cut
whole ones. A batch at a time (core.stored_secrets)."""

from django.db import migrations

from core.redact import redact_held_tokens
from core.stored_secrets import stored_secrets_cut


def cut_secrets(apps, schema_editor):
    Agent = apps.get_model("agents", "Agent")
    using = schema_editor.connection.alias
    stored_secrets_cut(Agent, "description", using=using, cut=redact_held_tokens)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("agents", "0007_execution_created_at_index"),
    ]

    operations = [migrations.RunPython(cut_secrets, migrations.RunPython.noop)]
