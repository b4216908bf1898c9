"""A personal access token says whether it is limited to some projects in a field of its
own, so that one whose projects are all deleted reaches none instead of all (issue 10).
Tokens made with a project list keep it: they are marked restricted here."""

from django.db import migrations, models


def mark_restricted(apps, schema_editor):
    PersonalAccessToken = apps.get_model("apikeys", "PersonalAccessToken")
    through = PersonalAccessToken.projects.through
    PersonalAccessToken.objects.filter(
        pk__in=through.objects.values("personalaccesstoken_id")
    ).update(projects_restricted=True)


class Migration(migrations.Migration):
    dependencies = [
        ("apikeys", "0013_personal_token_revoked_by"),
    ]

    operations = [
        migrations.AddField(
            model_name="personalaccesstoken",
            name="projects_restricted",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(mark_restricted, migrations.RunPython.noop),
    ]
