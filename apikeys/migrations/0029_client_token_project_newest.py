"""A project's client tokens newest first, (project_id, id DESC), for the client tokens
page: it read every tenant's tokens (a seq scan, then a sort) to show the project's week.
Tokens are minted by API calls while a deploy migrates: built CONCURRENTLY on PostgreSQL
(core/concurrent_index.py).
"""

from django.db import migrations, models

from core.concurrent_index import ConcurrentIndex

BUILD = ConcurrentIndex(
    app_label="apikeys",
    model_name="ClientToken",
    index=models.Index(fields=["project", "-id"], name="ctoken_project_newest"),
    table="apikeys_clienttoken",
    columns="(project_id, id DESC)",
)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("apikeys", "0028_suspension_reasons_without_secrets"),
    ]

    operations = [BUILD.operation()]
