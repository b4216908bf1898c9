from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The frame around every /v1 and /client endpoint: the error envelope, who is calling
    (authentication), what they may do (permissions), CORS, rate limits, idempotency and
    one usage entry per call. Also the endpoints about credentials and the caller."""

    name = "api"
    verbose_name = "API"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from api import checks  # noqa: F401  (registers the deploy checks)
