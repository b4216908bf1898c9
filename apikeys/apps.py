from django.apps import AppConfig


class ApiKeysConfig(AppConfig):
    """Tokens of all three kinds, authentication of API calls, and their usage log."""

    name = "apikeys"
    verbose_name = "API keys"
    default_auto_field = "django.db.models.BigAutoField"
