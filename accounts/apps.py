from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Users, sign-in, projects and memberships, and the audit trail of who did what."""

    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import signals  # noqa: F401  (connects the sign-in audit receivers)
