"""An agent's `config` (what PUT /v1/agents/{name} takes: an object) and an execution's
`input` (an object of what the agent was given, by part: agents/runtime.py) hold objects,
and the database refuses anything else (core/json_type.py). Another type there (a row
edited by hand or restored from elsewhere) is kept, not dropped: {"stored": what was
there}. An execution's `output` is whatever the agent answered, any JSON, and is not
checked.

The execution log can be big: one UPDATE per column, then each constraint added NOT VALID
and validated (core.json_type.AddJsonTypeCheck), each in its own transaction (`atomic =
False`), so that on PostgreSQL none holds off the ingest's writes for the length of a
scan. Stopped at any point, it can be run again. Going back drops the constraints."""

from django.db import migrations

from core.json_type import AddJsonTypeCheck, JsonWrapped, json_type_check, json_type_repair, report


def repair(apps, schema_editor):
    using = schema_editor.connection.alias
    for model_name, field in (("Agent", "config"), ("Execution", "input")):
        Model = apps.get_model("agents", model_name)
        wrapped = JsonWrapped("stored", field)
        report(
            Model._meta.db_table,
            {field: json_type_repair(Model, field, "object", wrapped, using=using)},
        )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("agents", "0008_descriptions_without_disguised_tokens"),
    ]

    operations = [
        migrations.RunPython(repair, migrations.RunPython.noop),
        AddJsonTypeCheck(
            model_name="agent",
            constraint=json_type_check(
                field="config", json_type="object", name="agent_config_is_object"
            ),
        ),
        AddJsonTypeCheck(
            model_name="execution",
            constraint=json_type_check(
                field="input", json_type="object", name="execution_input_is_object"
            ),
        ),
    ]
