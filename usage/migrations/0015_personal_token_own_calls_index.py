"""A personal access token's own calls, newest first: the PAT's call log with Caller "The
token itself", and its CSV export. Without it the page walks every call of the token,
its client tokens' too, to find them: a token whose client tokens made its newest 400,000
calls had all of them read (0.25 s) to fill a page of its own, and a million of them took
0.74 s. Partial: keys' calls and client tokens' are not in it.

Built CONCURRENTLY partition by partition on PostgreSQL, where the log is partitioned by
day (core/concurrent_index.py); every partition made later gets its own copy.
"""

from django.db import migrations, models

from core.concurrent_index import ConcurrentIndex

BUILD = ConcurrentIndex(
    app_label="usage",
    model_name="UsageRecord",
    index=models.Index(
        fields=["personal_token", "-created_at", "-id"],
        condition=models.Q(personal_token__isnull=False, client_token__isnull=True),
        name="usage_pat_own_time",
    ),
    table="apikeys_usagerecord",
    columns="(personal_token_id, created_at DESC, id DESC) "
    "WHERE personal_token_id IS NOT NULL AND client_token_id IS NULL",
)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("usage", "0014_key_own_calls_index"),
    ]

    operations = [BUILD.operation()]
