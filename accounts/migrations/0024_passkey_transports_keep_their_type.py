"""A passkey's `transports` is the list the browser gave at registration, and the database
refuses anything else (core/json_type.py). Another type there (a row edited by hand)
failed the sign-in with that passkey. It becomes [] first: the browser then tries every
transport, as for a passkey registered without them. Going back drops the constraint."""

from django.db import migrations

from core.json_type import AddJsonTypeCheck, json_type_check, json_type_repair, report


def repair(apps, schema_editor):
    Passkey = apps.get_model("accounts", "Passkey")
    using = schema_editor.connection.alias
    report(
        Passkey._meta.db_table,
        {"transports": json_type_repair(Passkey, "transports", "array", [], using=using)},
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0023_names_without_disguised_tokens"),
    ]

    operations = [
        migrations.RunPython(repair, migrations.RunPython.noop),
        AddJsonTypeCheck(
            model_name="passkey",
            constraint=json_type_check(
                field="transports", json_type="array", name="passkey_transports_is_array"
            ),
        ),
    ]
