from django.apps import AppConfig


class UsageConfig(AppConfig):
    """The log of every API call: its writer, partitions and retention, the per-key and
    per-project read models, their charts, CSV export and pages."""

    name = "usage"
    default_auto_field = "django.db.models.BigAutoField"
