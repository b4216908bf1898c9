"""A personal access token's failed calls, newest first: its call log (and CSV export)
narrowed to an error outcome or a 4xx/5xx status, as usage_key_errors_time serves a key's.
Without it the filter walked usage_project_errors_time with no project condition, reading
every failed call in the log, every tenant's, and sorted them (32,000 of them: 0.3-0.38 s).
Partial: only PATs' failed calls (their client tokens' among them) are in it.

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
        condition=models.Q(personal_token__isnull=False) & ~models.Q(outcome="ok"),
        name="usage_pat_errors_time",
    ),
    table="apikeys_usagerecord",
    columns="(personal_token_id, created_at DESC, id DESC) "
    "WHERE personal_token_id IS NOT NULL AND outcome <> 'ok'",
)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("usage", "0015_personal_token_own_calls_index"),
    ]

    operations = [BUILD.operation()]
