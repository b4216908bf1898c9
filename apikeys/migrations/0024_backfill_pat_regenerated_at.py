"""PATs regenerated before `regenerated_at` existed get it from their newest
`personal_token.regenerated` audit event, so the lifetime policy counts them from then
(as it counts those regenerated from now on). One whose event is gone (audit retention)
stays counted from when it was made, as before."""

from django.db import migrations
from django.db.models import Max


def backfill(apps, schema_editor):
    AuditEvent = apps.get_model("audit", "AuditEvent")
    PersonalAccessToken = apps.get_model("apikeys", "PersonalAccessToken")
    newest = (
        AuditEvent.objects.filter(
            action="personal_token.regenerated", target_type="personalaccesstoken"
        )
        .values("target_id")
        .annotate(at=Max("created_at"))
    )
    for row in newest.iterator():
        if not row["target_id"].isascii() or not row["target_id"].isdigit():
            continue
        PersonalAccessToken.objects.filter(
            pk=int(row["target_id"]), regenerated_at__isnull=True
        ).update(regenerated_at=row["at"])


class Migration(migrations.Migration):

    dependencies = [
        ("apikeys", "0023_pat_regenerated_at"),
        ("audit", "0001_initial"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
