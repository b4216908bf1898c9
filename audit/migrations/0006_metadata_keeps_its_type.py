"""An audit event's `metadata` is the object audit_record() was given, and the database
refuses anything else (core/json_type.py). Another type there (a row edited by hand or
restored from elsewhere) made the audit pages answer 500. It is kept, not dropped:
{"stored": what was there}.

The audit trail can be big: one UPDATE, then the constraint added NOT VALID and validated
(core.json_type.AddJsonTypeCheck), each in its own transaction (`atomic = False`), so that on
PostgreSQL neither holds off writes for the length of a scan. Stopped at any point, it
can be run again. Going back drops the constraint."""

from django.db import migrations

from core.json_type import AddJsonTypeCheck, JsonWrapped, json_type_check, json_type_repair, report


def repair(apps, schema_editor):
    AuditEvent = apps.get_model("audit", "AuditEvent")
    using = schema_editor.connection.alias
    wrapped = JsonWrapped("stored", "metadata")
    report(
        AuditEvent._meta.db_table,
        {"metadata": json_type_repair(AuditEvent, "metadata", "object", wrapped, using=using)},
    )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("audit", "0005_user_agent"),
    ]

    operations = [
        migrations.RunPython(repair, migrations.RunPython.noop),
        AddJsonTypeCheck(
            model_name="auditevent",
            constraint=json_type_check(
                field="metadata", json_type="object", name="audit_metadata_is_object"
            ),
        ),
    ]
