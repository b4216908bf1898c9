"""Where a project's alerts are delivered (WebhookEndpoint), and each delivery with its
attempts (WebhookDelivery). Sending is in delivery.py; writes are in services.py."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.db import models
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from accounts.models import Project
from alerts.models import Flag
from core.json_type import json_type_check
from webhooks.addresses import port_not_accepted
from webhooks.signing import url_decrypt

MAX_ENDPOINTS_PER_PROJECT = 10


class EndpointQuerySet(models.QuerySet["WebhookEndpoint"]):
    """Reads of webhook endpoints: a project's (Settings → Webhooks, the per-project cap), the
    enabled ones that deliver() enqueues for, and the list's last-delivery columns."""

    def for_project(self, project: Project) -> EndpointQuerySet:
        return self.filter(project=project)

    def active(self) -> EndpointQuerySet:
        return self.filter(disabled_at__isnull=True)

    def with_last_delivery(self) -> EndpointQuerySet:
        """Each with `last_status`, `last_status_code` and `last_at` of its newest delivery."""
        newest = WebhookDelivery.objects.filter(endpoint=OuterRef("pk")).order_by(
            "-created_at", "-id"
        )
        return self.annotate(
            last_status=Subquery(newest.values("status")[:1]),
            last_status_code=Subquery(newest.values("last_status_code")[:1]),
            last_at=Subquery(newest.values("created_at")[:1]),
        )


class WebhookEndpoint(models.Model):
    """An address of the project's that hears about its alerts: signed JSON (generic) or
    a Slack incoming webhook. Hears only about alerts raised after it was added."""

    class Format(models.TextChoices):
        GENERIC = "generic", "JSON, signed (your own endpoint)"
        SLACK = "slack", "Slack incoming webhook"

    class MinSeverity(models.TextChoices):
        # Named after the lowest severity sent: "low" sends every alert.
        LOW = "low", "All alerts"
        MEDIUM = "medium", "Medium and high"
        HIGH = "high", "High only"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    # Fernet token of the URL (webhooks/signing.py): a Slack URL's path is its credential,
    # and a generic endpoint's query may be. Read it as `url`.
    url_encrypted = models.TextField()
    format = models.CharField(max_length=16, choices=Format.choices, default=Format.GENERIC)
    # Fernet token of the `whsec_…` secret (webhooks/signing.py); its hint for the list.
    secret_encrypted = models.TextField()
    secret_hint = models.CharField(max_length=20)
    min_severity = models.CharField(
        max_length=8, choices=MinSeverity.choices, default=MinSeverity.LOW
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    disabled_at = models.DateTimeField(null=True, blank=True)

    objects = EndpointQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.display_url

    @property
    def url(self) -> str:
        """InvalidToken if SECRET_KEY was replaced without keeping the old one in
        SECRET_KEY_FALLBACKS."""
        return url_decrypt(self.url_encrypted)

    @property
    def display_url(self) -> str:
        """Scheme and host only: a Slack URL's path is its secret, and so may a query be.

        A URL stored that urlsplit() now refuses (a bracketed name Python before 3.11.4
        read as a host, a hand edit) raised ValueError here: the owner's list, the
        endpoint's page and its Disable and Delete were each a 500."""
        try:
            parts = urlsplit(self.url)
        except InvalidToken:
            return "(address unreadable)"
        except ValueError:
            return "(address unparsable)"
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def port_not_accepted(self) -> int | None:
        """The port of an endpoint added before ports were limited, that a new one may not
        name (addresses.PORTS): it is still sent to, and its pages say so."""
        try:
            return port_not_accepted(self.url)
        except (InvalidToken, ValueError):
            return None

    @property
    def has_more_than_host(self) -> bool:
        try:
            parts = urlsplit(self.url)
        except (InvalidToken, ValueError):
            return False
        return parts.path not in ("", "/") or bool(parts.query)

    def wants(self, severity: str) -> bool:
        return SEVERITY_RANK[severity] >= SEVERITY_RANK[self.min_severity]


SEVERITY_RANK: dict[str, int] = {
    Flag.Severity.LOW: 0,
    Flag.Severity.MEDIUM: 1,
    Flag.Severity.HIGH: 2,
}


class DeliveryQuerySet(models.QuerySet["WebhookDelivery"]):
    """Reads of deliveries: an endpoint's, newest first (its log), and due(): the deliveries
    the sender may pick at a moment (webhooks/delivery.py), and what its claim's conditional
    UPDATE checks again, so two senders never take one delivery."""

    def for_endpoint(self, endpoint: WebhookEndpoint) -> DeliveryQuerySet:
        """The endpoint's deliveries."""
        return self.filter(endpoint=endpoint)

    def newest_first(self) -> DeliveryQuerySet:
        """The newest first, as the endpoint's log lists them."""
        return self.order_by("-created_at", "-id")

    def due(self, now: datetime) -> DeliveryQuerySet:
        """Waiting for an attempt whose time has come, to an endpoint still enabled. A
        delivery being sent is due again only once its claim has lapsed (its sender died).

        The endpoint is asked about in a subquery, not a join: an UPDATE with a join is
        made `id IN (SELECT ...)` with every condition inside, which PostgreSQL does not
        check again for a row it waited for; a second sender's claim that waited for the
        first's then took the delivery too, and sent it twice."""
        return self.filter(
            status__in=(
                WebhookDelivery.Status.PENDING,
                WebhookDelivery.Status.FAILED,
                WebhookDelivery.Status.SENDING,
            ),
            next_attempt_at__lte=now,
            endpoint_id__in=WebhookEndpoint.objects.active().values("pk"),
        )


class WebhookDelivery(models.Model):
    """One event for one endpoint: the body fixed when it was enqueued, and how its
    attempts went. Retries resend the same body and event id with a fresh signature."""

    class Status(models.TextChoices):
        PENDING = "pending", "Queued"
        SENDING = "sending", "Sending"  # claimed by a run until next_attempt_at
        SUCCEEDED = "succeeded", "Delivered"
        FAILED = "failed", "Failed, will retry"
        GAVE_UP = "gave_up", "Gave up"

    # Still to go out: queued, or being sent by a run.
    WAITING = (Status.PENDING, Status.SENDING)

    class EventType(models.TextChoices):
        ALERT_RAISED = "alert.raised", "Alert raised"
        TEST = "webhook.test", "Test"

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    # None for a test delivery (and for one whose alert was since deleted).
    flag = models.ForeignKey(
        Flag, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    event_id = models.CharField(max_length=40, unique=True)
    event_type = models.CharField(max_length=32, choices=EventType.choices)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # Not a small integer: each Retry now of a delivery that gave up adds one, with no end.
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Each alert is enqueued once per endpoint, however many schedulers run.
            models.UniqueConstraint(
                fields=["endpoint", "flag"],
                condition=Q(flag__isnull=False),
                name="webhookdelivery_once_per_flag",
            ),
            # webhooks/payloads.py makes an object (webhooks/migrations/0007).
            json_type_check(
                field="payload", json_type="object", name="webhookdelivery_payload_is_object"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhookdelivery_due"),
            # An endpoint's newest delivery (the list) and its log, in their exact order:
            # without the id, the planner walked every tenant's newest deliveries by age
            # instead (webhooks/migrations/0005).
            models.Index(
                fields=["endpoint", "-created_at", "-id"], name="webhookdelivery_log_newest"
            ),
            # The daily prune finds the oldest first (webhooks/retention.py).
            models.Index(fields=["created_at"], name="webhookdelivery_age"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.endpoint_id} ({self.status})"

    @property
    def waiting(self) -> bool:
        return self.status in self.WAITING
