"""A key's own calls, newest first: the key's call log with Caller "The key itself", and
its CSV export. Without it the page walks every call of the key, its client tokens' too,
to find them: a key whose browsers made its newest 400,000 calls had all of them read
(0.25 s) to fill a page of its own, and a million of them took 0.86 s. Partial: a
personal access token's calls and client tokens' are not in it.

Built CONCURRENTLY partition by partition on PostgreSQL, where the log is partitioned by
day (core/concurrent_index.py); every partition made later gets its own copy.
"""

from django.db import migrations, models

from core.concurrent_index import ConcurrentIndex

BUILD = ConcurrentIndex(
    app_label="usage",
    model_name="UsageRecord",
    index=models.Index(
        fields=["api_key", "-created_at", "-id"],
        condition=models.Q(api_key__isnull=False, client_token__isnull=True),
        name="usage_key_own_time",
    ),
    table="apikeys_usagerecord",
    columns="(api_key_id, created_at DESC, id DESC) "
    "WHERE api_key_id IS NOT NULL AND client_token_id IS NULL",
)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("usage", "0013_personal_token_client_tokens_index"),
    ]

    operations = [BUILD.operation()]
