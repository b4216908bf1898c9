"""A token kept in a project's, a person's or a passkey's name before they refused one
(accounts 0015 and 0018, core.validators.no_secret) is cut from it, as apikeys 0028 cut
suspension reasons: its prefix stays and the secret goes. These names are shown to every
member, in mail subjects, invitations and security notices.
A batch at a time (core.stored_secrets), outside one long transaction."""

from django.db import migrations

from core.stored_secrets import stored_secrets_cut


def cut_secrets(apps, schema_editor):
    using = schema_editor.connection.alias
    for model in ("Project", "User", "Passkey"):
        stored_secrets_cut(apps.get_model("accounts", model), "name", using=using)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("accounts", "0018_user_and_passkey_names_hold_no_token"),
    ]

    operations = [migrations.RunPython(cut_secrets, migrations.RunPython.noop)]
