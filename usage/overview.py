"""Reads for a project's usage overview: its calls over a time range, counted from the log.

The roll-ups (UsageHour, UsageIp) are per API key and know nothing of token types or of
personal access tokens, so they cannot answer "client-token calls of key X that failed
auth last week". The overview therefore counts the log rows themselves, and so its
figures are exactly those of the rows that the same filters export. Every read is fenced
by the project and the time range, which the (project, -created_at, -id) index serves.

Three scans of the fenced rows answer the whole page:
1. one GROUP BY (bucket, token type, key, PAT, outcome) gives the chart in all its
   stackings, the totals and the per-key table;
2. one GROUP BY address gives the top addresses and, through a window over the groups,
   how many distinct addresses there are;
3. one GROUP BY agent gives the top agents.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Count, Max, Min, Q, Sum, Window
from django.db.models.functions import Trunc

from accounts.models import Project
from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.tokens import TokenKind
from usage.models import Outcome, UsageDrop, UsageRecord, UsageRecordQuerySet

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Up to this span the chart has a bar per hour (48 at most); beyond it, a bar per day.
HOURLY_UP_TO = timedelta(days=2)
LONGEST_RANGE = timedelta(days=92)
TOP_SHOWN = 10
KEYS_IN_CHART = 5

AUTH_FAILURES = (Outcome.AUTH_FAILURE, Outcome.REVOKED_KEY)


class Stack:
    """What the chart's bars are split by."""

    KIND = "kind"
    KEY = "key"
    OUTCOME = "outcome"

    choices: tuple[tuple[str, str], ...] = (
        (OUTCOME, "Outcome"),
        (KIND, "Token type"),
        (KEY, "Key"),
    )


type _Group = Mapping[str, Any]  # one row of the GROUP BY
type _SeriesOf = Callable[[_Group], str]
type _CallerId = tuple[str, int]  # ("key", api key id) or ("pat", personal token id)


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_of(moment: datetime) -> datetime:
    return hour_of(moment).replace(hour=0)


# -- What is asked --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimeRange:
    """[since, until) in UTC, and whether the chart counts it per hour or per day."""

    since: datetime
    until: datetime
    name: str

    @classmethod
    def last_hours(cls, hours: int, *, now: datetime, name: str) -> TimeRange:
        """The last `hours` whole hours, the current one included (as the per-key page)."""
        until = hour_of(now) + HOUR
        return cls(until - hours * HOUR, until, name)

    @classmethod
    def last_days(cls, days: int, *, now: datetime, name: str) -> TimeRange:
        """The last `days` UTC days, today included."""
        until = day_of(now) + DAY
        return cls(until - days * DAY, until, name)

    @property
    def by_day(self) -> bool:
        return self.until - self.since > HOURLY_UP_TO

    @property
    def step(self) -> timedelta:
        return DAY if self.by_day else HOUR

    def bucket_starts(self) -> list[datetime]:
        """The start of every bar, oldest first: the hour (or day) holding `since`, then on
        until `until`. The first and last may be partly outside the range: their bars count
        only the calls inside it."""
        start = day_of(self.since) if self.by_day else hour_of(self.since)
        starts = []
        while start < self.until:
            starts.append(start)
            start += self.step
        return starts


@dataclass(frozen=True, slots=True)
class OverviewFilters:
    """What the overview, and its export, are narrowed to. Empty fields do not narrow."""

    time_range: TimeRange
    api_key: ApiKey | None = None
    token_kind: str = ""
    outcome: str = ""
    ip: str = ""

    @property
    def narrows(self) -> bool:
        """Whether anything but the time range narrows the calls."""
        return bool(self.api_key or self.token_kind or self.outcome or self.ip)

    def records(self, project: Project) -> UsageRecordQuerySet:
        """The project's log rows that match. The project fence comes first and stays, so
        a key of another project, however it got here, matches nothing."""
        records = UsageRecord.objects.filter(
            project=project,
            created_at__gte=self.time_range.since,
            created_at__lt=self.time_range.until,
        )
        if self.api_key is not None:
            records = records.filter(api_key=self.api_key)
        if self.token_kind:
            records = records.filter(token_kind=self.token_kind)
        if self.outcome:
            records = records.filter(outcome=self.outcome)
        if self.ip:
            records = records.filter(ip=self.ip)
        return records


# -- What is answered -----------------------------------------------------------------------


@dataclass(slots=True)
class Counts:
    """Calls, and how many of them failed. Adds up as the rows are read."""

    requests: int = 0
    errors: int = 0  # every call that did not succeed
    auth_failures: int = 0  # refused credentials or permissions, revoked or expired keys

    def add(self, requests: int, errors: int, auth_failures: int) -> None:
        self.requests += requests
        self.errors += errors
        self.auth_failures += auth_failures

    @property
    def error_percent(self) -> float | None:
        return self.errors * 100 / self.requests if self.requests else None

    @property
    def auth_failure_percent(self) -> float | None:
        return self.auth_failures * 100 / self.requests if self.requests else None


@dataclass(frozen=True, slots=True)
class Series:
    """One stacked part of each bar, and how it is drawn."""

    id: str
    label: str
    colour: str


@dataclass(slots=True)
class Bucket:
    """One bar: an hour or a day, its calls split by series, and its failures."""

    start: datetime
    counts: Counts = field(default_factory=Counts)
    by_series: dict[str, int] = field(default_factory=dict)

    def count(self, series: Series) -> int:
        return self.by_series.get(series.id, 0)


@dataclass(frozen=True, slots=True)
class AddressRow:
    ip: str
    requests: int
    share: float  # of all matching calls, in per cent
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class AgentRow:
    agent: str
    counts: Counts


@dataclass(slots=True)
class CallerRow:
    """A key's calls (its own and its client tokens'), or a personal access token's."""

    api_key: ApiKey | None = None
    personal_token: PersonalAccessToken | None = None
    counts: Counts = field(default_factory=Counts)
    last_call: datetime | None = None


@dataclass(frozen=True, slots=True)
class ProjectOverview:
    filters: OverviewFilters
    stack: str
    totals: Counts
    distinct_ips: int
    calls_without_address: int
    buckets: list[Bucket]
    series: list[Series]
    top_addresses: list[AddressRow]
    top_agents: list[AgentRow]
    callers: list[CallerRow]  # keys and PATs with calls, busiest first
    quiet_keys: list[ApiKey]  # the project's keys without a matching call
    dropped: int = 0  # usage entries the service could not keep in this range (see below)

    @property
    def time_range(self) -> TimeRange:
        return self.filters.time_range

    @property
    def series_totals(self) -> list[tuple[Series, int]]:
        return [(s, sum(b.count(s) for b in self.buckets)) for s in self.series]

    @property
    def figure_rows(self) -> list[tuple[Bucket, list[int]]]:
        """Each bucket with its calls per series, in the series' order: the chart's table."""
        return [(b, [b.count(s) for s in self.series]) for b in self.buckets]

    @property
    def more_addresses(self) -> int:
        return max(0, self.distinct_ips - len(self.top_addresses))

    @property
    def busiest(self) -> Bucket | None:
        busiest = max(self.buckets, key=lambda b: b.counts.requests, default=None)
        return busiest if busiest is not None and busiest.counts.requests else None


KIND_COLOURS: dict[str, str] = {
    TokenKind.API_KEY: "#6d64e8",
    TokenKind.CLIENT_TOKEN: "#1f9aa3",
    TokenKind.PERSONAL_ACCESS_TOKEN: "#e0a21b",
}
OUTCOME_COLOURS: dict[str, str] = {
    Outcome.OK: "#8580ee",
    Outcome.CLIENT_ERROR: "#e0a21b",
    Outcome.AUTH_FAILURE: "#e0652f",
    Outcome.REVOKED_KEY: "#b3261e",
    Outcome.SERVER_ERROR: "#5b5d6b",
}
KEY_COLOURS = ("#6d64e8", "#1f9aa3", "#e0a21b", "#d1497a", "#4c8bd6")
OTHER_KEYS_COLOUR = "#a3a6b4"
PATS_COLOUR = "#7a5c2e"


def project_usage_overview(
    *, project: Project, filters: OverviewFilters, stack: str = Stack.OUTCOME
) -> ProjectOverview:
    """Everything the overview shows for these filters, counted from the matching rows."""
    records = filters.records(project)
    time_range = filters.time_range
    step = "day" if time_range.by_day else "hour"
    groups = list(
        records.values(
            "token_kind",
            "api_key_id",
            "personal_token_id",
            "outcome",
            bucket=Trunc("created_at", step, tzinfo=UTC),
        )
        .annotate(
            n=Count("id"),
            last=Max("created_at"),
            without_address=Count("id", filter=Q(ip__isnull=True)),
        )
        .order_by()
    )

    totals = Counts()
    without_address = sum(group["without_address"] for group in groups)
    buckets = {start: Bucket(start) for start in time_range.bucket_starts()}
    callers: dict[_CallerId, CallerRow] = {}
    for group in groups:
        n = group["n"]
        failed = n if group["outcome"] != Outcome.OK else 0
        auth = n if group["outcome"] in AUTH_FAILURES else 0
        totals.add(n, failed, auth)
        bucket = buckets[_as_utc(group["bucket"])]
        bucket.counts.add(n, failed, auth)
        if group["api_key_id"] is not None:
            caller_id = ("key", group["api_key_id"])
        else:
            caller_id = ("pat", group["personal_token_id"] or 0)
        caller = callers.setdefault(caller_id, CallerRow())
        caller.counts.add(n, failed, auth)
        last = _as_utc(group["last"])
        if caller.last_call is None or last > caller.last_call:
            caller.last_call = last

    keys = {key.pk: key for key in ApiKey.objects.for_project(project)}
    pat_ids = [pk for kind, pk in callers if kind == "pat" and pk is not None]
    pats = PersonalAccessToken.objects.select_related("user").in_bulk(pat_ids)
    for (kind, pk), caller in callers.items():
        if kind == "key":
            caller.api_key = keys.get(pk)
        else:
            caller.personal_token = pats.get(pk)
    ranked = sorted(callers.items(), key=lambda item: (-item[1].counts.requests, item[0]))

    series, series_of = _series(stack, filters, ranked, callers)
    for group in groups:
        bucket = buckets[_as_utc(group["bucket"])]
        series_id = series_of(group)
        bucket.by_series[series_id] = bucket.by_series.get(series_id, 0) + group["n"]

    # The busiest addresses, and (counted over all the groups, before the LIMIT) how many
    # there are: one scan instead of a COUNT(DISTINCT) beside a GROUP BY.
    top_ips = list(
        records.exclude(ip__isnull=True)
        .values("ip")
        .annotate(
            n=Count("id"),
            first=Min("created_at"),
            last=Max("created_at"),
            addresses=Window(Count("*")),
        )
        .order_by("-n", "-last", "ip")[:TOP_SHOWN]
    )
    top_addresses = [
        AddressRow(
            ip=str(row["ip"]),
            requests=row["n"],
            share=row["n"] * 100 / totals.requests,
            first_seen=_as_utc(row["first"]),
            last_seen=_as_utc(row["last"]),
        )
        for row in top_ips
    ]
    top_agents = [
        AgentRow(row["agent"], Counts(row["n"], row["failed"], row["auth"]))
        for row in records.exclude(agent="")
        .values("agent")
        .annotate(
            n=Count("id"),
            failed=Count("id", filter=~Q(outcome=Outcome.OK)),
            auth=Count("id", filter=Q(outcome__in=AUTH_FAILURES)),
        )
        .order_by("-n", "agent")[:TOP_SHOWN]
    ]

    seen_keys = {caller.api_key.pk for _, caller in ranked if caller.api_key is not None}
    return ProjectOverview(
        filters=filters,
        stack=stack,
        totals=totals,
        distinct_ips=top_ips[0]["addresses"] if top_ips else 0,
        calls_without_address=without_address,
        buckets=list(buckets.values()),
        series=series,
        top_addresses=top_addresses,
        top_agents=top_agents,
        callers=[caller for _, caller in ranked],
        quiet_keys=[key for pk, key in keys.items() if pk not in seen_keys],
        dropped=usage_dropped_between(time_range.since, time_range.until),
    )


def usage_dropped_between(since: datetime, until: datetime) -> int:
    """Usage entries the write-behind had to drop (core/write_behind.py: a database away
    for longer than the buffers last, or an entry that fails on its own content), counted
    in the hours from `since` to `until`. A dropped entry may not say whose it was, so the
    count is the service's: every project's overview shows it, as a warning that its
    figures for that time may be low. It is 0 unless something went badly wrong."""
    dropped = UsageDrop.objects.filter(
        channel="usage", hour__gte=hour_of(since), hour__lte=until
    ).aggregate(n=Sum("count"))["n"]
    return dropped or 0


def _series(
    stack: str,
    filters: OverviewFilters,
    ranked: list[tuple[_CallerId, CallerRow]],
    callers: dict[_CallerId, CallerRow],
) -> tuple[list[Series], _SeriesOf]:
    """The chart's series for this stacking, and which series a group's calls belong to."""
    if stack == Stack.OUTCOME:
        outcomes = [(o, label) for o, label in Outcome.choices]
        if filters.outcome:
            outcomes = [(o, label) for o, label in outcomes if o == filters.outcome]
        series = [Series(o, str(label), OUTCOME_COLOURS[o]) for o, label in outcomes]
        return series, lambda group: str(group["outcome"])

    if stack == Stack.KEY:
        key_ids = [pk for (kind, pk), _ in ranked if kind == "key"]
        named = {pk: callers[("key", pk)].api_key for pk in key_ids[:KEYS_IN_CHART]}
        series = [
            Series(f"key-{pk}", key.name if key else f"Key {pk}", colour)
            for (pk, key), colour in zip(named.items(), KEY_COLOURS, strict=False)
        ]
        if len(key_ids) > len(named):
            series.append(Series("other", "Other keys", OTHER_KEYS_COLOUR))
        if any(kind == "pat" for (kind, _), _ in ranked):
            series.append(Series("pat", "Personal access tokens", PATS_COLOUR))

        def series_of(group: _Group) -> str:
            key_id = group["api_key_id"]
            if key_id is None:
                return "pat"
            return f"key-{key_id}" if key_id in named else "other"

        return series, series_of

    kinds = [k for k, _ in TokenKind.choices if not filters.token_kind or k == filters.token_kind]
    series = [Series(k, TokenKind(k).label, KIND_COLOURS[k]) for k in kinds]
    return series, lambda group: str(group["token_kind"])


def _as_utc(moment: object) -> datetime:
    assert isinstance(moment, datetime)
    return moment.astimezone(UTC)
