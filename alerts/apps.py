from django.apps import AppConfig


class AlertsConfig(AppConfig):
    """Suspicious activity: detection over the usage log, flags with their evidence, and
    their acknowledgement."""

    name = "alerts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from audit.actions import BOTH, Action, register_actions, register_group

        register_group("flags", "Alerts", prefix="flag.", scopes=BOTH)
        register_actions(
            Action("flag.acknowledged", "Alert acknowledged"),
            Action("flag.network_ours", "Network confirmed as the project's own", "warning"),
        )
        # Rules decide what raises an alert at all: a change to them is worth finding.
        register_group("alert_rules", "Alert rules", prefix="alerts.", scopes=BOTH)
        register_actions(Action("alerts.rules_changed", "Alert rules changed", "warning"))
