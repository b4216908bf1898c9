from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Who of a project's members is emailed about what: each person's choice per project,
    and the senders' one way of asking it."""

    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from audit.actions import BOTH, Action, register_actions, register_group

        register_group("notifications", "Email preferences", prefix="notifications.", scopes=BOTH)
        register_actions(
            Action("notifications.preferences_changed", "Email preferences changed"),
        )
