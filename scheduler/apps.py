from django.apps import AppConfig


class SchedulerConfig(AppConfig):
    """The scheduled jobs (detection, reminders, partitions, pruning) and the process that
    runs them: `manage.py run_scheduler`, started by `make run` and `make serve`."""

    name = "scheduler"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from scheduler import checks  # noqa: F401 - registers the check of USAGE_RETENTION
