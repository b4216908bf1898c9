"""The columns 0011 and 0012 added get their default in the database too: the last
release, still running beside this one during an upgrade (its scheduler's detection, its
workers), inserts flags and token networks without them, and each insert failed (NOT
NULL), so its detection run raised no alert. Setting a column's default is a change of
the catalogue alone on PostgreSQL: no row is read or rewritten."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0012_flag_email_attempts"),
    ]

    operations = [
        migrations.AlterField(
            model_name="flag",
            name="email_attempts",
            field=models.PositiveSmallIntegerField(db_default=0, default=0),
        ),
        migrations.AlterField(
            model_name="tokennetwork",
            name="at_least",
            field=models.BooleanField(db_default=False, default=False),
        ),
    ]
