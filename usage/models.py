"""The log of API calls (one row per call) and the roll-ups that keep its pages fast."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce

from accounts.models import Project
from apikeys.models import ApiKey
from apikeys.tokens import TokenKind


class Outcome(models.TextChoices):
    """The one bucket each API call falls into, for filters and charts."""

    OK = "ok", "Succeeded"
    CLIENT_ERROR = "client_error", "Client error"
    AUTH_FAILURE = "auth_failure", "Auth or permission failure"
    REVOKED_KEY = "revoked_key", "Revoked or expired key"
    SERVER_ERROR = "server_error", "Server error"

    @classmethod
    def of(cls, status: int, error_code: str) -> Outcome:
        if status < 400:
            return cls.OK
        if error_code == "expired_api_key":
            return cls.REVOKED_KEY
        if status in (401, 403):
            return cls.AUTH_FAILURE
        if status >= 500:
            return cls.SERVER_ERROR
        return cls.CLIENT_ERROR


def on_the_client_api(path: str) -> bool:
    """A call's path is the Client API's (`/client`, `/client/…`), which only browsers call:
    a key's or PAT's own call there is refused at the door, and is a leak
    (api/authentication.py; usage/writer.py, alerts/detection/keys_on_client_api.py)."""
    return path == "/client" or path.startswith("/client/")


# The same, as the log's rows are filtered.
ON_THE_CLIENT_API = Q(path="/client") | Q(path__startswith="/client/")


class UsageRecordQuerySet(models.QuerySet["UsageRecord"]):
    """Reads of the call log: for_key() is where a key's usage page starts (usage/key_usage.py),
    before its filters and keyset paging."""

    def for_key(self, api_key: ApiKey) -> UsageRecordQuerySet:
        return self.filter(api_key=api_key)


class UsageRecord(models.Model):
    """One API call made with an identifiable token. Never holds the token or its header."""

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField()
    # None only for a personal access token's call that named no project (or was refused).
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="usage"
    )
    # A client token's calls carry both the token and the key that minted it, so the key's
    # usage page shows its tokens' traffic too.
    client_token = models.ForeignKey(
        "apikeys.ClientToken", null=True, blank=True, on_delete=models.CASCADE, related_name="usage"
    )
    personal_token = models.ForeignKey(
        "apikeys.PersonalAccessToken",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="usage",
    )
    token_kind = models.CharField(max_length=32, choices=TokenKind.choices)
    method = models.CharField(max_length=8)
    # The agent the call named (/v1/agents/{name}/…), for "top agents"; blank otherwise.
    agent = models.CharField(max_length=64, blank=True)
    path = models.CharField(max_length=255)
    status = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=40, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    latency_us = models.PositiveIntegerField()
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=255, blank=True)
    request_id = models.CharField(max_length=40)

    objects = UsageRecordQuerySet.as_manager()

    class Meta:
        # The tables kept their names when the log moved here from apikeys.
        db_table = "apikeys_usagerecord"
        indexes = [
            models.Index(fields=["api_key", "-created_at", "-id"], name="usage_key_time"),
            models.Index(fields=["project", "-created_at", "-id"], name="usage_project_time"),
            # The failed calls alone, newest first: filters on an error outcome or a 4xx/5xx
            # status walk this instead of every call of the key. Only failures pay for it.
            models.Index(
                fields=["api_key", "-created_at", "-id"],
                condition=~Q(outcome="ok"),
                name="usage_key_errors_time",
            ),
            # The same for the project's log, whose rare outcomes and statuses would
            # otherwise pass over every call of the project to fill a page.
            models.Index(
                fields=["project", "-created_at", "-id"],
                condition=~Q(outcome="ok"),
                name="usage_project_errors_time",
            ),
            # An address filter goes straight to that address's calls, newest first: a
            # rarely used address no longer makes the read pass over every call of the
            # key (or project) between its first and last use.
            models.Index(fields=["api_key", "ip", "-created_at", "-id"], name="usage_key_ip_time"),
            models.Index(
                fields=["project", "ip", "-created_at", "-id"], name="usage_project_ip_time"
            ),
            # The calls to one agent, newest first: a new-agent alert opens the calls to
            # the agent it names, which would otherwise be found by passing over the key's
            # (or project's) calls to its usual agents, millions of them.
            models.Index(
                fields=["api_key", "agent", "-created_at", "-id"], name="usage_key_agent_time"
            ),
            models.Index(
                fields=["project", "agent", "-created_at", "-id"], name="usage_project_agent_time"
            ),
            # A client token's calls, newest first, for the key log's drill-down into one
            # token: otherwise the read passes over the key's own calls to find them. Only
            # the rows of client tokens (under a tenth) are in it.
            models.Index(
                fields=["client_token", "-created_at", "-id"],
                condition=Q(client_token__isnull=False),
                name="usage_client_token_time",
            ),
            # A key's client tokens' calls, newest first: the key log's Caller "Its client
            # tokens". Otherwise a key that mints a few among millions of calls of its own
            # has them all read to fill the page. Only client tokens' rows are in it.
            models.Index(
                fields=["api_key", "-created_at", "-id"],
                condition=Q(client_token__isnull=False),
                name="usage_key_tokens_time",
            ),
            # A key's own calls, newest first: "The key itself", which otherwise passes
            # over every call of its client tokens (a browser app's hundreds of
            # thousands) to fill a page. Neither PATs' nor client tokens' rows are in it.
            models.Index(
                fields=["api_key", "-created_at", "-id"],
                condition=Q(api_key__isnull=False, client_token__isnull=True),
                name="usage_key_own_time",
            ),
            # A personal access token's calls, newest first, for its owner's usage page:
            # without it a page, and the week's tallies, read and sort every call the
            # token ever made (a CI token's millions). Only PATs' rows are in it.
            models.Index(
                fields=["personal_token", "-created_at", "-id"],
                condition=Q(personal_token__isnull=False),
                name="usage_pat_time",
            ),
            # The calls of the client tokens a PAT minted, newest first: its log's Caller
            # "Its client tokens", which otherwise reads every call of a CI token's own to
            # find a few. Only those tokens' rows are in it, a sliver of the log.
            models.Index(
                fields=["personal_token", "-created_at", "-id"],
                condition=Q(personal_token__isnull=False, client_token__isnull=False),
                name="usage_pat_tokens_time",
            ),
            # A PAT's own calls, newest first: its log's Caller "The token itself", which
            # otherwise passes over every call of the client tokens it minted (a browser
            # app's hundreds of thousands) to fill a page. Only PATs' own rows are in it.
            models.Index(
                fields=["personal_token", "-created_at", "-id"],
                condition=Q(personal_token__isnull=False, client_token__isnull=True),
                name="usage_pat_own_time",
            ),
            # A PAT's failed calls, newest first: its log's error outcomes and 4xx/5xx
            # statuses, which otherwise walk the project failed-calls index with no project
            # to hold them to (every tenant's failures) or pass over the token's successes.
            models.Index(
                fields=["personal_token", "-created_at", "-id"],
                condition=Q(personal_token__isnull=False) & ~Q(outcome="ok"),
                name="usage_pat_errors_time",
            ),
        ]
        constraints = [
            # A call logged twice (a write-behind batch retried after its commit) is one
            # row. With created_at, as PostgreSQL wants for a partitioned table.
            models.UniqueConstraint(fields=["request_id", "created_at"], name="usage_request_once")
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.method} {self.path} {self.status}"

    @property
    def latency_ms(self) -> float:
        return self.latency_us / 1000


class UsageHour(models.Model):
    """Calls per key per hour, by outcome: the charts and totals read this, not the log."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="usage_hours")
    hour = models.DateTimeField()
    requests = models.PositiveIntegerField(default=0)
    ok = models.PositiveIntegerField(default=0)
    client_errors = models.PositiveIntegerField(default=0)
    auth_failures = models.PositiveIntegerField(default=0)
    revoked_key_uses = models.PositiveIntegerField(default=0)
    server_errors = models.PositiveIntegerField(default=0)
    latency_us_total = models.BigIntegerField(default=0)

    class Meta:
        db_table = "apikeys_usagehour"
        constraints = [
            models.UniqueConstraint(fields=["api_key", "hour"], name="usagehour_unique_key_hour")
        ]

    def __str__(self) -> str:
        return f"{self.api_key_id} {self.hour:%Y-%m-%d %H}:00 {self.requests}"


class UsageIpQuerySet(models.QuerySet["UsageIp"]):
    """Reads of a key's addresses, one kind at a time."""

    def own(self) -> UsageIpQuerySet:
        """Where the key's secret itself was used from: what its allowed networks govern."""
        return self.filter(via_client_tokens=False)

    def via_client_tokens(self) -> UsageIpQuerySet:
        """Where the client tokens it minted were used from: its customers' browsers."""
        return self.filter(via_client_tokens=True)


class UsageIp(models.Model):
    """Each address a key was used from, with first and last seen: one row for the calls
    made with the key itself and another for those of the client tokens it minted.

    The two are kept apart because they mean different things. The key's own addresses are
    its servers (or a leak's): its allowed networks apply to them, its new-network alerts
    are about them, and the usage page suggests networks to allow from them. Client tokens
    are used from browsers anywhere, which no allow list of the key governs
    (api/authentication.py); offered as networks to allow, they would open the key's
    secret to strangers' networks."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="usage_ips")
    ip = models.GenericIPAddressField()
    # Calls of the client tokens the key minted (UsageRecord.client_token set), not its own.
    via_client_tokens = models.BooleanField(default=False, db_default=False)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    # 64-bit: the row lasts as long as the address keeps calling (retention removes only
    # those unused since its cut-off), so its counts grow without end. A 32-bit count broke
    # its range at 2,147,483,647 calls, and every later call from the address was dropped.
    requests = models.PositiveBigIntegerField(default=0)
    # Of those, the calls the key was let in on: not refused as ended, suspended, outside
    # its allowed networks or over plain HTTP (usage.writer.REFUSED_AT_THE_DOOR). An address
    # with none is where the key was tried from (a leak's holder, once it is suspended),
    # never where it works from: no network of it is offered to allow (usage/networks.py).
    admitted = models.PositiveBigIntegerField(default=0, db_default=0)

    objects = UsageIpQuerySet.as_manager()

    class Meta:
        db_table = "apikeys_usageip"
        constraints = [
            # The address before the kind: the log's address filter (usage/key_usage.py)
            # looks a key's address up in both.
            models.UniqueConstraint(
                fields=["api_key", "ip", "via_client_tokens"], name="usageip_unique_key_ip_kind"
            )
        ]

    def __str__(self) -> str:
        return f"{self.api_key_id} {self.ip}"


class ProjectCallsRollup(models.Model):
    """A project's calls in one hour (or UTC day), by token type, key, personal access
    token, outcome and agent: the project overview's chart, totals, callers and agents,
    and the front page's day, read these, not the log (usage/overview.py).

    A client token's calls count on the key (or PAT) that minted it, as in the log. The
    writer adds to them in the transaction that writes the rows (usage/writer.py)."""

    # Found by the unique index, which starts with it: no index of its own to keep up.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    start = models.DateTimeField()  # the first moment of the hour (or day), UTC
    token_kind = models.CharField(max_length=32, choices=TokenKind.choices)
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    personal_token = models.ForeignKey(
        "apikeys.PersonalAccessToken",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    agent = models.CharField(max_length=64, blank=True)
    requests = models.PositiveIntegerField(default=0)
    without_address = models.PositiveIntegerField(default=0)
    last_call = models.DateTimeField()

    class Meta:
        abstract = True
        constraints = [
            # One row per group. A missing key or PAT is 0 here, so that the writer's
            # upsert finds the row of a group without one (NULLs are never equal).
            models.UniqueConstraint(
                F("project"),
                F("start"),
                F("token_kind"),
                Coalesce(F("api_key"), Value(0)),
                Coalesce(F("personal_token"), Value(0)),
                F("outcome"),
                F("agent"),
                name="%(class)s_unique_group",
            )
        ]

    def __str__(self) -> str:
        return f"{self.project_id} {self.start:%Y-%m-%d %H}:00 {self.outcome} {self.requests}"


class ProjectUsageHour(ProjectCallsRollup):
    """ProjectCallsRollup per UTC hour: the overview's whole hours at a range's ends (and its
    bars up to two days), and the front page's last 24 hours (overview/health.py)."""

    class Meta(ProjectCallsRollup.Meta):
        db_table = "usage_projecthour"


class ProjectUsageDay(ProjectCallsRollup):
    """ProjectCallsRollup per UTC day: the overview's whole days inside a range (and its bars
    past two days): a long range reads a row per group and day, not per hour."""

    # 64-bit in a day (usage/migrations/0018): 2,147,483,647 calls of one group in a UTC
    # day is 25,000 a second all day, as a flood on one key may be; past it, PostgreSQL
    # refused each batch's sum and the ingest dropped the group's later calls from the log.
    requests = models.PositiveBigIntegerField(default=0)
    without_address = models.PositiveBigIntegerField(default=0)

    class Meta(ProjectCallsRollup.Meta):
        db_table = "usage_projectday"


class ProjectAddressRollup(models.Model):
    """A project's calls from one address in one hour (or UTC day), by outcome, with the
    first and last of them: the project overview's busiest addresses read these."""

    # Found by the unique index, which starts with it: no index of its own to keep up.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    start = models.DateTimeField()  # the first moment of the hour (or day), UTC
    ip = models.GenericIPAddressField()
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    requests = models.PositiveIntegerField(default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        abstract = True
        constraints = [
            models.UniqueConstraint(
                fields=["project", "start", "ip", "outcome"], name="%(class)s_unique_address"
            )
        ]

    def __str__(self) -> str:
        return f"{self.project_id} {self.start:%Y-%m-%d %H}:00 {self.ip} {self.requests}"


class ProjectAddressHour(ProjectAddressRollup):
    """ProjectAddressRollup per UTC hour: the overview's busiest addresses over the whole hours
    at a range's ends."""

    class Meta(ProjectAddressRollup.Meta):
        db_table = "usage_projectaddresshour"


class ProjectAddressDay(ProjectAddressRollup):
    """ProjectAddressRollup per UTC day: the overview's busiest addresses over the whole days
    inside a range."""

    # 64-bit in a day, as ProjectUsageDay's: one address flooding all day.
    requests = models.PositiveBigIntegerField(default=0)

    class Meta(ProjectAddressRollup.Meta):
        db_table = "usage_projectaddressday"


class LateUsage(models.Model):
    """A batch of the log written well after (or, by a skewed clock, before) its calls were
    made, as by an ingest catching up after an outage: its oldest and newest call, and the
    highest id it could hold.

    Rows take ids in commit order, and nearly all are written within seconds of their call,
    so the detector reads new rows in the recent days' partitions only. A batch noted here
    widens that read to [oldest, newest] until it has read past `last_id`; it then forgets
    the note (alerts/detection/run.py)."""

    last_id = models.BigIntegerField(db_index=True)
    oldest = models.DateTimeField()
    newest = models.DateTimeField()

    class Meta:
        db_table = "usage_lateusage"

    def __str__(self) -> str:
        return (
            f"up to id {self.last_id}: {self.oldest:%Y-%m-%d %H:%M} to {self.newest:%Y-%m-%d %H:%M}"
        )


class UnattributedCalls(models.Model):
    """Calls whose token could not be tied to a key (missing, malformed, unknown): counted
    per hour and error code, never stored one by one, so junk traffic cannot fill the log."""

    hour = models.DateTimeField()
    error_code = models.CharField(max_length=40)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "apikeys_unattributedcalls"
        constraints = [
            models.UniqueConstraint(fields=["hour", "error_code"], name="unattributed_unique")
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 {self.error_code} {self.count}"


class UsageDrop(models.Model):
    """Usage entries (or other write-behind records) that could not be kept, per hour,
    channel and reason: a database down for longer than the buffers last, or a record
    that fails on its own content. Shown on the usage overview if it ever happens."""

    hour = models.DateTimeField()
    channel = models.CharField(max_length=40)
    reason = models.CharField(max_length=40)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hour", "channel", "reason"], name="usagedrop_unique")
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 {self.channel} {self.reason} {self.count}"
