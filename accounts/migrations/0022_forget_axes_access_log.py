"""Remove what django-axes' AccessLog holds: the address, user agent and path of every
sign-in and sign-out since the first, a copy of the audit log's `user.signed_in` and
`user.signed_out` that nothing read and no job removed. AXES_DISABLE_ACCESS_LOG stops new
rows; the failures that count for the lockout (AccessAttempt) are left as they are.
A bounded batch a statement (core.batched_delete), outside one long transaction: the
table has a row per sign-in since the first, more on a big install than one DELETE
removes within DB_STATEMENT_TIMEOUT, which the migrate connection has too."""

from django.db import migrations

from core.batched_delete import delete_in_batches


def forget_access_log(apps, schema_editor):
    delete_in_batches(apps.get_model("axes", "AccessLog").objects.all(), order_by="pk")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("accounts", "0021_pending_second_steps"),
        ("axes", "0010_accessattemptexpiration"),
    ]

    operations = [migrations.RunPython(forget_access_log, migrations.RunPython.noop)]
