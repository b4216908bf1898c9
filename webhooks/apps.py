from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Alert delivery to a project's own HTTPS endpoints and Slack: endpoints, signed
    deliveries with retries, their log, and `deliver_webhooks`."""

    name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.events import project_deleted
        from audit.actions import BOTH, Action, register_actions, register_group
        from webhooks.services import webhooks_stop_of_deleted_project

        project_deleted.connect(
            webhooks_stop_of_deleted_project, dispatch_uid="webhooks.deleted_project"
        )

        register_group("webhooks", "Webhooks", prefix="webhook.", scopes=BOTH)
        register_actions(
            Action("webhook.created", "Webhook endpoint added", "success"),
            Action("webhook.disabled", "Webhook endpoint disabled", "warning"),
            Action("webhook.secret_rolled", "Webhook signing secret rolled", "warning"),
            Action("webhook.deleted", "Webhook endpoint deleted", "danger"),
            Action("webhook.test_sent", "Webhook test queued"),
            Action("webhook.retry_queued", "Webhook delivery retried"),
        )
