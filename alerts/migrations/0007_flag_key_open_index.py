"""Each key's open alerts: (api_key_id) WHERE acknowledged_at IS NULL, for the key list's
count beside each key, which read every alert the project ever had (acknowledged ones
too). The detection job writes flags while a deploy migrates: built CONCURRENTLY on
PostgreSQL (core/concurrent_index.py).
"""

from django.db import migrations, models
from django.db.models import Q

from core.concurrent_index import ConcurrentIndex

BUILD = ConcurrentIndex(
    app_label="alerts",
    model_name="Flag",
    index=models.Index(
        fields=["api_key"], condition=Q(acknowledged_at__isnull=True), name="flag_key_open"
    ),
    table="apikeys_flag",
    columns="(api_key_id) WHERE acknowledged_at IS NULL",
)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("alerts", "0006_flag_created_at_index"),
    ]

    operations = [BUILD.operation()]
