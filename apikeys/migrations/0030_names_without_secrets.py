"""A token kept in a key's or PAT's name or a key's notes before they refused one
(core.validators.no_secret), or in a suspension reason in a form that apikeys 0028 did not
see as one (invisible characters inside, fullwidth forms), is cut from it, as 0028 cut
reasons: its prefix stays and the secret goes. Names and notes are shown in every list,
audit entry, alert and expiry email, to every member.

Two working keys of a project whose names differ only by the secret would be one name
once cut: the later one is given “Name (2)” (apikeys 0025's way), neither is ended.
A batch at a time (core.stored_secrets), outside one long transaction."""

from django.db import migrations

from core.stored_secrets import stored_secrets_cut, stored_secrets_cut_unique


def cut_secrets(apps, schema_editor):
    using = schema_editor.connection.alias
    ApiKey = apps.get_model("apikeys", "ApiKey")
    stored_secrets_cut_unique(ApiKey, "name", using=using)
    stored_secrets_cut(ApiKey, "notes", "suspended_reason", using=using)
    stored_secrets_cut(apps.get_model("apikeys", "PersonalAccessToken"), "name", using=using)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("apikeys", "0029_client_token_project_newest"),
    ]

    operations = [migrations.RunPython(cut_secrets, migrations.RunPython.noop)]
