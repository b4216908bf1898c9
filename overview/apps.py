from django.apps import AppConfig


class OverviewConfig(AppConfig):
    """The project's front page: what happened in the last day and what needs a look."""

    name = "overview"
    default_auto_field = "django.db.models.BigAutoField"
