from django.apps import AppConfig


class UsageConfig(AppConfig):
    """The log of every API call: its writer, partitions and retention, the per-key and
    per-project read models, their charts, CSV export and pages."""

    name = "usage"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from core import write_behind
        from usage.writer import usage_check_from_stream, usage_drops_record, usage_write_records

        write_behind.register("usage", usage_write_records, from_stream=usage_check_from_stream)
        write_behind.on_dropped(usage_drops_record)
