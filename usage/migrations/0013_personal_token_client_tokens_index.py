"""The calls of the client tokens a personal access token minted, newest first: the PAT's
call log with Caller "Its client tokens". Without it the page walks every call of the
token, its own too, to find them: a CI token's 300,000 calls of its own were all read
(0.3 s) for its few client tokens' calls. Partial: only those tokens' calls are in it.

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
        condition=models.Q(personal_token__isnull=False, client_token__isnull=False),
        name="usage_pat_tokens_time",
    ),
    table="apikeys_usagerecord",
    columns="(personal_token_id, created_at DESC, id DESC) "
    "WHERE personal_token_id IS NOT NULL AND client_token_id IS NOT NULL",
)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("usage", "0012_key_client_tokens_index"),
    ]

    operations = [BUILD.operation()]
