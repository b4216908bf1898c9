"""A token kept in a project's, person's or passkey's name before names refused one with
spaces inside it or without its prefix (core.redact.holds_token) is cut from it, as 0019
cut whole ones. A batch at a time (core.stored_secrets), outside one long transaction."""

from django.db import migrations

from core.redact import redact_held_tokens
from core.stored_secrets import stored_secrets_cut


def cut_secrets(apps, schema_editor):
    using = schema_editor.connection.alias
    for name in ("Project", "User", "Passkey"):
        model = apps.get_model("accounts", name)
        stored_secrets_cut(model, "name", using=using, cut=redact_held_tokens)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("accounts", "0022_forget_axes_access_log"),
    ]

    operations = [migrations.RunPython(cut_secrets, migrations.RunPython.noop)]
