"""A key's client tokens' calls, newest first: the key's call log with Caller "Its client
tokens". Without it the page walks every call of the key, its own too, to find them: a
key that mints a few client tokens among a million calls of its own had all of them read
(0.87 s), whatever the page showed. Partial: only client tokens' calls are in it.

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
        condition=models.Q(client_token__isnull=False),
        name="usage_key_tokens_time",
    ),
    table="apikeys_usagerecord",
    columns="(api_key_id, created_at DESC, id DESC) WHERE client_token_id IS NOT NULL",
)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("usage", "0011_usageip_admitted"),
    ]

    operations = [BUILD.operation()]
