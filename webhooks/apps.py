from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Alert delivery to a project's own HTTPS endpoints and Slack: endpoints, signed
    deliveries with retries, their log, and `deliver_webhooks`."""

    name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from audit.actions import BOTH, Action, register_actions, register_group

        register_group("webhooks", "Webhooks", prefix="webhook.", scopes=BOTH)
        register_actions(
            Action("webhook.created", "Webhook endpoint added", "success"),
            Action("webhook.disabled", "Webhook endpoint disabled", "warning"),
            Action("webhook.deleted", "Webhook endpoint deleted", "danger"),
            Action("webhook.test_sent", "Webhook test queued"),
            Action("webhook.retry_queued", "Webhook delivery retried"),
        )
