"""A project's alert rules' `off` is the list of kinds the form turned off, and the
database refuses anything else (core/json_type.py). Another type there (a row edited by
hand) is read as none off already (AlertRules.kinds_off): it becomes [], which says so.
Going back drops the constraint."""

from django.db import migrations

from core.json_type import AddJsonTypeCheck, json_type_check, json_type_repair, report


def repair(apps, schema_editor):
    AlertRules = apps.get_model("alerts", "AlertRules")
    using = schema_editor.connection.alias
    report(
        AlertRules._meta.db_table,
        {"off": json_type_repair(AlertRules, "off", "array", [], using=using)},
    )


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0016_key_on_client_api"),
    ]

    operations = [
        migrations.RunPython(repair, migrations.RunPython.noop),
        AddJsonTypeCheck(
            model_name="alertrules",
            constraint=json_type_check(
                field="off", json_type="array", name="alertrules_off_is_array"
            ),
        ),
    ]
