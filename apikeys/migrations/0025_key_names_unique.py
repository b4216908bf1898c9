"""Two working keys of a project cannot share a name, whatever its case, in the database
too: a unique index on (project, UPPER(name)) over the keys that are neither revoked nor
released (`name_released`; the forms have said so since issue 13, and the code check let a
form sent from two tabs, or two API calls, through at once).

`name_released`: a revoked or expired key's name may be used again. Revoking is a write the
index sees; expiring is not (an index cannot compare with now()), so the create or rename
that takes an expired key's name sets the flag on that key first (apikeys.services.
key_name_claim), and this migration sets it on every key expired by now.

Keys that already share a name (what the race made) would stop the index from being built.
Both keys work and either may be in use, so neither is revoked or deleted: the oldest keeps
its name, and each later one is given the first free “Name (2)”, “Name (3)”, … of its
project, its name cut to keep within the column's 100 characters. The renames are in the
audit trail (`api_key.renamed`, by this upgrade), and the list shows the keys apart.

Nothing can make a key between the renames and the index: on PostgreSQL the migration is one
transaction, in which AddField holds the table's ACCESS EXCLUSIVE lock until it ends; SQLite
has one writer at a time.
"""

from django.conf import settings
from django.db import migrations, models
from django.db.models import Count, Value
from django.db.models.functions import Upper
from django.utils import timezone

NAME_MAX = 100
UPGRADE = "the upgrade that made working keys' names unique (apikeys 0025)"


def tell_apart(apps, schema_editor):
    ApiKey = apps.get_model("apikeys", "ApiKey")
    AuditEvent = apps.get_model("audit", "AuditEvent")
    ApiKey.objects.filter(revoked_at__isnull=True, expires_at__lte=timezone.now()).update(
        name_released=True
    )
    holding = ApiKey.objects.filter(revoked_at__isnull=True, name_released=False).annotate(
        upper=Upper("name")
    )
    shared = (
        holding.values("project_id", "upper")
        .annotate(keys=Count("id"))
        .filter(keys__gt=1)
        .order_by("project_id", "upper")
    )
    for group in list(shared):
        in_project = holding.filter(project_id=group["project_id"])
        later = in_project.filter(upper=group["upper"]).order_by("created_at", "id")[1:]
        for key in later:
            old = key.name
            n = 2
            while True:
                suffix = f" ({n})"
                new = old[: NAME_MAX - len(suffix)].rstrip() + suffix
                if not in_project.filter(upper=Upper(Value(new))).exists():
                    break
                n += 1
            ApiKey.objects.filter(pk=key.pk).update(name=new)
            AuditEvent.objects.create(
                action="api_key.renamed",
                actor=None,
                actor_email=UPGRADE,
                project_id=key.project_id,
                target_type="apikey",
                target_id=str(key.pk),
                target_label=f"{new} ({key.hint})"[:200],
                metadata={"from": old, "to": new, "why": "an older working key has its name"},
            )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0013_passkeys"),
        ("apikeys", "0024_backfill_pat_regenerated_at"),
        ("audit", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="name_released",
            field=models.BooleanField(db_default=False, default=False),
        ),
        # The renames are not undone going back: the names stay told apart.
        migrations.RunPython(tell_apart, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="apikey",
            constraint=models.UniqueConstraint(
                models.F("project"),
                Upper("name"),
                condition=models.Q(("name_released", False), ("revoked_at__isnull", True)),
                name="apikey_unique_working_name",
            ),
        ),
    ]
