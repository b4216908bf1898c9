# How many of a key's calls from an address it was let in on (UsageIp.admitted): an address
# whose every call was refused at the door (the key suspended, revoked, outside its allowed
# networks) is where it was tried from, and its network is not offered to allow.
#
# The rows already there count as admitted whole: which of their calls were refused is
# known from the log alone, and until now every one of them was offered. The table is
# locked by the new column until this commits, so no batch is counted twice or missed.

from django.db import migrations, models
from django.db.models import F


def admitted_as_before(apps, schema_editor):
    apps.get_model("usage", "UsageIp").objects.update(admitted=F("requests"))


class Migration(migrations.Migration):
    dependencies = [("usage", "0010_usageip_via_client_tokens")]

    operations = [
        migrations.AddField(
            model_name="usageip",
            name="admitted",
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
        migrations.RunPython(admitted_as_before, migrations.RunPython.noop),
    ]
