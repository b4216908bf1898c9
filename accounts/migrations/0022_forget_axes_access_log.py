"""Remove what django-axes' AccessLog holds: the address, user agent and path of every
sign-in and sign-out since the first, a copy of the audit log's `user.signed_in` and
`user.signed_out` that nothing read and no job removed. AXES_DISABLE_ACCESS_LOG stops new
rows; the failures that count for the lockout (AccessAttempt) are left as they are."""

from django.db import migrations


def forget_access_log(apps, schema_editor):
    apps.get_model("axes", "AccessLog").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0021_pending_second_steps"),
        ("axes", "0010_accessattemptexpiration"),
    ]

    operations = [migrations.RunPython(forget_access_log, migrations.RunPython.noop)]
