from django.apps import AppConfig


class AgentsConfig(AppConfig):
    """A project's agents: the resource that API keys guard."""

    name = "agents"
    default_auto_field = "django.db.models.BigAutoField"
