"""Executions get an id made when they run (their rows are now written after the answer).
Those already written keep the id they were known by: exec_<row id>."""

from django.db import migrations, models

import agents.models


def keep_old_ids(apps, schema_editor):
    Execution = apps.get_model("agents", "Execution")
    Execution.objects.filter(public_id__isnull=True).update(
        public_id=models.functions.Concat(models.Value("exec_"), models.F("id"), output_field=models.CharField())
    )


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0003_agent_name_no_trailing_newline"),
    ]

    operations = [
        migrations.AddField(
            model_name="execution",
            name="public_id",
            field=models.CharField(max_length=32, null=True),
        ),
        migrations.RunPython(keep_old_ids, migrations.RunPython.noop, elidable=False),
        migrations.AlterField(
            model_name="execution",
            name="public_id",
            field=models.CharField(
                default=agents.models.execution_public_id, max_length=32, unique=True
            ),
        ),
    ]
