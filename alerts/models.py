"""Suspicious-activity flags, and the detector's bookkeeping (see alerts/detection/).

The tables kept their names (apikeys_flag, apikeys_keynetwork, apikeys_detectioncursor)
when they moved here from apikeys."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Self, TypeGuard

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import Project
from alerts.rules import TUNABLE_BY_NAME, TUNABLES, Thresholds
from apikeys.models import ApiKey, ClientToken, PersonalAccessToken
from core.json_type import json_type_check
from core.networks import network_around, parse_networks


class FlagQuerySet(models.QuerySet["Flag"]):
    """Reads of alerts: a project's, the open (unacknowledged) ones, and the order every list
    of them shows; the Alerts page, the nav's count and the front page start here."""

    def for_project(self, project: Project) -> FlagQuerySet:
        return self.filter(project=project)

    def open(self) -> FlagQuerySet:
        return self.filter(acknowledged_at__isnull=True)

    def count_per_key(self, key_ids: set[int]) -> dict[int, int]:
        """How many of these each of the keys `key_ids` has (none: absent)."""
        if not key_ids:
            return {}
        rows = (
            self.filter(api_key_id__in=key_ids)
            .values("api_key_id")
            .annotate(n=models.Count("id"))
            .values_list("api_key_id", "n")
        )
        return dict(rows)

    def most_pressing_first(self) -> FlagQuerySet:
        """High, then medium, then low; the latest first within each: the order every
        list of alerts shows, so a short one never hides a high alert behind newer ones."""
        severity = models.Case(
            models.When(severity=Flag.Severity.HIGH, then=models.Value(0)),
            models.When(severity=Flag.Severity.MEDIUM, then=models.Value(1)),
            default=models.Value(2),
            output_field=models.IntegerField(),
        )
        return self.order_by(severity, "-last_seen", "-id")


def is_count(value: object) -> TypeGuard[int]:
    """Whether `value` is a count as an alert's evidence holds one: a whole number, and no
    bool (True is an int in Python: `"count": true`, a row edited by hand, read as 1).
    Anything else is read as no count."""
    return isinstance(value, int) and not isinstance(value, bool)


def evidence_texts(evidence: dict[str, Any], name: str) -> list[str]:
    """The strings of the list an alert's evidence holds under `name` (networks, addresses,
    agents, hours): none if it holds no list there (a row edited by hand), whose string
    was read letter by letter, and whose number raised."""
    listed = evidence.get(name)
    return [item for item in listed if isinstance(item, str)] if isinstance(listed, list) else []


def evidence_text(evidence: dict[str, Any], name: str, default: str) -> str:
    """The string an alert's evidence holds under `name`, or `default` if it holds none."""
    value = evidence.get(name)
    return value if isinstance(value, str) else default


class UnreadEvidence(dict[str, Any]):
    """Read in place of a flag's evidence that is no JSON object (Flag.from_db): empty, and
    never saved over what the row holds (Flag.save)."""


class Flag(models.Model):
    """Something in a key's usage that a person should look at, with the evidence.

    While a flag is open, the same finding adds to it (occurrences, last_seen) rather
    than raising a second one; once acknowledged, a new occurrence opens a new flag.
    """

    class Kind(models.TextChoices):
        ENDED_TOKEN_USED = "ended_token_used", "Revoked or expired token still in use"
        NEW_NETWORK = "new_network", "Used from a new network"
        VOLUME_SPIKE = "volume_spike", "Volume spike"
        AUTH_FAILURE_BURST = "auth_failure_burst", "Burst of auth or permission failures"
        CLIENT_TOKEN_MANY_IPS = "client_token_many_ips", "Client token used from many addresses"
        UNUSED_KEY = "unused_key", "Unused for a long time"
        BLOCKED_NETWORK = "blocked_network", "Used from outside its allowed networks"
        FOUND_IN_PUBLIC = "found_in_public", "Found in public by GitHub's secret scanning"
        NEW_AGENT = "new_agent", "Called agents it had not called"
        SIGNS_TOGETHER = "signs_together", "Several signs of a leak at once"
        KEY_ON_CLIENT_API = "key_on_client_api", "Sent to the Client API, from a browser"

    class Severity(models.TextChoices):
        HIGH = "high", "High"
        MEDIUM = "medium", "Medium"
        LOW = "low", "Low"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="flags")
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="flags"
    )
    client_token = models.ForeignKey(
        ClientToken, null=True, blank=True, on_delete=models.CASCADE, related_name="flags"
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    # What makes two findings the same one: the kind, the token, and e.g. the network.
    dedupe_key = models.CharField(max_length=200)
    summary = models.CharField(max_length=300)
    evidence = models.JSONField(default=dict)
    # 64-bit: an open alert adds every run's findings until acknowledged, for years maybe.
    occurrences = models.PositiveBigIntegerField(default=1)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    # When it was raised at its severity (a new-network alert turned high is raised anew):
    # the alert email's and the webhooks' day counts from it.
    created_at = models.DateTimeField(default=timezone.now)
    emailed_at = models.DateTimeField(null=True, blank=True)
    # Its email's tries that reached nobody, and when the next may be (detection.emails).
    # A default in the database too: the last release, still running during an upgrade,
    # writes flags without it.
    email_attempts = models.PositiveSmallIntegerField(default=0, db_default=0)
    email_retry_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = FlagQuerySet.as_manager()

    class Meta:
        db_table = "apikeys_flag"
        ordering = ["-last_seen", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dedupe_key"],
                condition=Q(acknowledged_at__isnull=True),
                name="flag_one_open_per_finding",
            )
        ]
        indexes = [
            models.Index(fields=["project", "acknowledged_at"], name="flag_project_open"),
            # Webhook delivery looks for the projects alerted in the last day, every run.
            models.Index(fields=["created_at"], name="flag_created_at"),
            # Each key's open alerts, counted on the key list (alerts/migrations/0007).
            models.Index(
                fields=["api_key"], condition=Q(acknowledged_at__isnull=True), name="flag_key_open"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.summary}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Saved as Django saves it, but for evidence read as none in place of what could
        not be read (from_db), still untouched: left out of the save. Written, the {} was
        saved over what the row held (a flag saved whole once acknowledged), and the
        evidence was gone for whoever came to put it right. Evidence set or added to in
        its place is saved."""
        if type(self.evidence) is UnreadEvidence and not self.evidence and not self._state.adding:
            fields = kwargs.get("update_fields")
            if fields is None:
                fields = [f.name for f in self._meta.concrete_fields if not f.primary_key]
            kwargs["update_fields"] = [name for name in fields if name != "evidence"]
        super().save(*args, **kwargs)

    @classmethod
    def from_db(
        cls, db: str | None, field_names: Collection[str], values: Collection[Any], **kwargs: Any
    ) -> Self:
        """A flag as read, its evidence a JSON object whatever the row holds. The detector
        writes one; a row put right by hand or restored may hold null, a list or a string,
        which every reader's .get() raised on: the project's Alerts page was a 500, its
        alert emails stopped, and webhook enqueueing of every alert of the project to an
        endpoint failed on each run for the alert's day. Read as holding no evidence, the
        alert is listed, mailed and sent by what its other columns say."""
        flag = super().from_db(db, field_names, values, **kwargs)
        if "evidence" in flag.__dict__ and not isinstance(flag.evidence, dict):
            flag.evidence = UnreadEvidence()
        return flag

    def network_in_question(self) -> str | None:
        """The network an alert about one is about: the new network (when the alert is
        about one alone), or that of the address an allowlist refused most (the first the
        detector lists). None otherwise."""
        if self.kind == Flag.Kind.NEW_NETWORK:
            count = self.evidence.get("count", 1)
            if not is_count(count) or count > 1:
                # Several new networks: confirming one would pass the rest. Or a count
                # that is no number (a row edited by hand), which int() raised on.
                return None
            candidate = str(self.evidence.get("network", ""))
        elif self.kind == Flag.Kind.BLOCKED_NETWORK and self.evidence.get("ips"):
            ips = self.evidence["ips"]
            if not isinstance(ips, list):
                return None  # a row edited by hand: an object there raised KeyError
            try:
                candidate = network_around(str(ips[0]))
            except ValueError:
                return None
        else:
            return None
        networks, problems = parse_networks(candidate)
        return networks[0] if networks and not problems else None


class KeyNetwork(models.Model):
    """A network (/24 for IPv4, /48 for IPv6) a key has been used from, and since when.
    The detector learns at most KEY_NETWORKS_KEPT a key (alerts/detection/new_networks.py),
    and tells once that a key's are full; a network a person said is ours is kept whatever
    the key holds."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    network = models.CharField(max_length=64)
    first_seen = models.DateTimeField()
    # A project member said "this network is ours" (from an alert about it).
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        db_table = "apikeys_keynetwork"
        constraints = [
            models.UniqueConstraint(fields=["api_key", "network"], name="keynetwork_unique")
        ]

    def __str__(self) -> str:
        return f"{self.api_key_id} {self.network}"


class KeyAgent(models.Model):
    """An agent a key has called successfully, and since when (its usual agents)."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    agent = models.CharField(max_length=64)
    first_seen = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["api_key", "agent"], name="keyagent_unique")]

    def __str__(self) -> str:
        return f"{self.api_key_id} {self.agent}"


class TokenNetwork(models.Model):
    """A network a personal access token has been used from, and since when. One first
    used past the token's first day of use is `new`: its person is told of it once
    (`noticed_at`) in a security notice, not a project's alert (alerts/token_networks.py).
    At most TOKEN_NETWORKS_KEPT a token: past them the oldest told of are forgotten (then
    its latest first-day ones, down to half); at most NEW_NETWORKS_PER_RUN learnt in a
    detection run."""

    personal_token = models.ForeignKey(
        PersonalAccessToken, on_delete=models.CASCADE, related_name="+"
    )
    network = models.CharField(max_length=64)
    first_seen = models.DateTimeField()
    first_ip = models.GenericIPAddressField(null=True, blank=True)
    new = models.BooleanField(default=False)
    noticed_at = models.DateTimeField(null=True, blank=True)
    # Told with the token's calls passed over by a run (NEW_NETWORKS_PER_RUN) or networks
    # left out for want of room: its notice says "or more". A default in the database
    # too: the last release, still running during an upgrade, writes rows without it.
    at_least = models.BooleanField(default=False, db_default=False)
    # Notices of it that reached nobody, and when the next may be tried
    # (alerts/token_networks.py, NOTICE_RETRY_WAITS). A default in the database too, as
    # at_least's.
    notice_attempts = models.PositiveSmallIntegerField(default=0, db_default=0)
    notice_retry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["personal_token", "network"], name="tokennetwork_unique"
            )
        ]
        indexes = [
            # The networks still to be told of: few, read every run.
            models.Index(
                fields=["personal_token", "first_seen"],
                condition=Q(new=True, noticed_at__isnull=True),
                name="tokennetwork_untold",
            )
        ]

    def __str__(self) -> str:
        return f"{self.personal_token_id} {self.network}"


class DetectionCursor(models.Model):
    """How far the detector has read the usage log (the last UsageRecord id it processed)."""

    name = models.CharField(max_length=32, primary_key=True)
    last_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "apikeys_detectioncursor"

    def __str__(self) -> str:
        return f"{self.name} at {self.last_id}"


def _bounded(name: str) -> models.PositiveIntegerField:
    tunable = TUNABLE_BY_NAME[name]
    return models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(tunable.least), MaxValueValidator(tunable.most)],
        help_text=f"{tunable.least}–{tunable.most}; empty: {tunable.default}",
    )


class AlertRules(models.Model):
    """A project's own thresholds for the alert kinds that depend on what is ordinary for
    it (alerts/rules.py). NULL is "the default": a project without a row, or with every
    value NULL, is checked as every project was before rules existed."""

    project = models.OneToOneField(
        Project, on_delete=models.CASCADE, primary_key=True, related_name="alert_rules"
    )
    burst_failures = _bounded("burst_failures")
    burst_minutes = _bounded("burst_minutes")
    new_network_grace_hours = _bounded("new_network_grace_hours")
    spike_factor = _bounded("spike_factor")
    spike_min_calls = _bounded("spike_min_calls")
    client_token_max_ips = _bounded("client_token_max_ips")
    unused_days = _bounded("unused_days")
    # The kinds turned off (alerts.rules.SWITCHABLE), as a list of Flag.Kind values.
    off = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            # The form keeps values in bounds; this keeps any other writer to them too.
            *(
                models.CheckConstraint(
                    condition=Q(**{f"{t.name}__isnull": True})
                    | Q(**{f"{t.name}__gte": t.least, f"{t.name}__lte": t.most}),
                    name=f"alertrules_{t.name}_bounds",
                )
                for t in TUNABLES
            ),
            # The form writes a list (alerts/migrations/0017).
            json_type_check(field="off", json_type="array", name="alertrules_off_is_array"),
        ]

    def __str__(self) -> str:
        return f"Alert rules of {self.project_id}"

    def values(self) -> dict[str, int | None]:
        return {t.name: getattr(self, t.name) for t in TUNABLES}

    def kinds_off(self) -> list[object]:
        """The kinds turned off. `off` is a JSON list the form writes; anything else (a
        hand-edited row) is none."""
        return self.off if isinstance(self.off, list) else []

    def thresholds(self) -> Thresholds:
        return Thresholds.of(self.values(), self.kinds_off())
