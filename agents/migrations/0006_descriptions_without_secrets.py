"""A token kept in an agent's description before PUT /v1/agents refused one (holds_secret)
is cut from it, as apikeys 0028 cut suspension reasons: its prefix stays and the secret
goes. The description is shown to every member, in every agents list and over the API.
A batch at a time (core.stored_secrets), outside one long transaction."""

from django.db import migrations

from core.stored_secrets import stored_secrets_cut


def cut_secrets(apps, schema_editor):
    Agent = apps.get_model("agents", "Agent")
    stored_secrets_cut(Agent, "description", using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("agents", "0005_execution_agent_index"),
    ]

    operations = [migrations.RunPython(cut_secrets, migrations.RunPython.noop)]
