"""A token kept in a key's or PAT's name, a key's notes or its suspension reason before
they refused one with spaces inside it or without its prefix (core.redact.holds_token) is
cut from it, as 0030 cut whole ones: two working keys' names that become one are told
apart as 0030 tells them. A batch at a time (core.stored_secrets)."""

from django.db import migrations

from core.redact import redact_held_tokens
from core.stored_secrets import stored_secrets_cut, stored_secrets_cut_unique


def cut_secrets(apps, schema_editor):
    using = schema_editor.connection.alias
    ApiKey = apps.get_model("apikeys", "ApiKey")
    PersonalAccessToken = apps.get_model("apikeys", "PersonalAccessToken")
    stored_secrets_cut_unique(ApiKey, "name", using=using, cut=redact_held_tokens)
    stored_secrets_cut(ApiKey, "notes", "suspended_reason", using=using, cut=redact_held_tokens)
    stored_secrets_cut(PersonalAccessToken, "name", using=using, cut=redact_held_tokens)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("apikeys", "0031_last_refused_ip"),
    ]

    operations = [migrations.RunPython(cut_secrets, migrations.RunPython.noop)]
