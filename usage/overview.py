"""Reads for a project's usage overview: its calls over a time range.

The figures come from the project's roll-ups, which the writer keeps in the same
transaction as the log rows (usage/models.py, usage/writer.py), so they are exactly the
counts of the rows that the same filters export (tests/usage/test_rollup_exactness.py):
- ProjectUsageDay and ProjectUsageHour, the calls per UTC day (or hour) by token type,
  key, PAT, outcome and agent, give the chart in all its stackings, the totals, the
  per-key table and the top agents;
- ProjectAddressDay and ProjectAddressHour, the calls per day (or hour) by address and
  outcome, give the busiest addresses and how many there are.

A range is cut into `Tiles`: the whole days inside it are read from the daily roll-ups,
the whole hours left at either end from the hourly ones, and the minutes left at either
end of a range that starts or stops inside an hour from the log itself; they are added
up. So the presets (whole hours or whole days) never read the log. What a roll-up does
not know is counted from the log for the whole range: an address filter for everything,
a key or token-type filter for the addresses. Every read of the log is fenced by the
project and the time range, which its indexes serve.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import (
    Aggregate,
    Case,
    Count,
    Expression,
    F,
    Max,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.functions import Trunc

from accounts.models import Project
from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.tokens import TokenKind
from core.network_lookup import address_or_network
from usage.models import (
    Outcome,
    ProjectAddressDay,
    ProjectAddressHour,
    ProjectCallsRollup,
    ProjectUsageDay,
    ProjectUsageHour,
    UsageDrop,
    UsageRecord,
    UsageRecordQuerySet,
)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Up to this span the chart has a bar per hour (48 at most); beyond it, a bar per day.
HOURLY_UP_TO = timedelta(days=2)
LONGEST_RANGE = timedelta(days=92)
TOP_SHOWN = 10
KEYS_IN_CHART = 5
# The By key table's rows: every working key of a full project (MAX_WORKING_KEYS_PER_PROJECT)
# fits, and the keys and tokens past it with fewer calls are counted, not listed.
CALLERS_SHOWN = 100

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
# The series a row of the roll-ups or the log counts in, as the database works it out.
type _SeriesOf = Expression | F
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
    ip: str = ""  # an address, or a network ("45.83.64.0/24")

    @property
    def narrows(self) -> bool:
        """Whether anything but the time range narrows the calls."""
        return bool(self.api_key or self.token_kind or self.outcome or self.ip)

    def records(self, project: Project) -> UsageRecordQuerySet:
        """The project's log rows that match. The project fence comes first and stays, so
        a key of another project, however it got here, matches nothing."""
        records = UsageRecord.objects.filter(
            self.by_caller_and_outcome(),
            project=project,
            created_at__gte=self.time_range.since,
            created_at__lt=self.time_range.until,
        )
        return records.filter(address_or_network(self.ip)) if self.ip else records

    def by_caller_and_outcome(self) -> Q:
        """The key, token type and outcome filters: the log's and the roll-ups' columns."""
        narrowed = Q()
        if self.api_key is not None:
            narrowed &= Q(api_key=self.api_key)
        if self.token_kind:
            narrowed &= Q(token_kind=self.token_kind)
        if self.outcome:
            narrowed &= Q(outcome=self.outcome)
        return narrowed


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
    """One of the overview's busiest addresses (TOP_SHOWN at most), with its share of the
    matching calls; the page links each to its calls."""

    ip: str
    requests: int
    share: float  # of all matching calls, in per cent
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class AgentRow:
    """One of the agents named by the most matching calls (TOP_SHOWN at most): the overview's
    top agents table."""

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
    """Everything the project usage page shows for one set of filters, as
    project_usage_overview() builds it; the view and its template only lay it out."""

    filters: OverviewFilters
    stack: str
    totals: Counts
    distinct_ips: int
    calls_without_address: int
    buckets: list[Bucket]
    series: list[Series]
    top_addresses: list[AddressRow]
    top_agents: list[AgentRow]
    callers: list[CallerRow]  # keys and PATs with calls, busiest first, CALLERS_SHOWN at most
    quiet_keys: list[ApiKey]  # the project's keys without a matching call, CALLERS_SHOWN at most
    dropped: int = 0  # usage entries the service could not keep in this range (see below)
    more_callers: int = 0  # keys and PATs with calls past the CALLERS_SHOWN busiest
    more_quiet_keys: int = 0  # quiet keys past the CALLERS_SHOWN listed

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
    """Everything the overview shows for these filters (see the module for where each
    figure is read from)."""
    time_range = filters.time_range
    callers = _callers(project, filters)
    ranked = sorted(callers.items(), key=lambda item: (-item[1].counts.requests, item[0]))
    # A project that rotates its keys has thousands of ended ones, and each that a
    # forgotten server still tries has calls: only the busiest are read and listed.
    shown = ranked[:CALLERS_SHOWN]
    # The chart by key names the busiest keys, which tokens busier still may have kept
    # out of the table.
    charted = [(caller_id, caller) for caller_id, caller in ranked if caller_id[0] == "key"]
    named = [*shown, *charted[:KEYS_IN_CHART]]
    project_keys = ApiKey.objects.for_project(project)
    keys = project_keys.in_bulk([pk for (kind, pk), _ in named if kind == "key"])
    pat_ids = [pk for (kind, pk), _ in shown if kind == "pat" and pk]
    pats = PersonalAccessToken.objects.select_related("user").in_bulk(pat_ids)
    for (kind, pk), caller in named:
        if kind == "key":
            caller.api_key = keys.get(pk)
        else:
            caller.personal_token = pats.get(pk)

    series, series_of = _series(stack, filters, ranked, callers)
    totals = Counts()
    without_address = 0
    buckets = {start: Bucket(start) for start in time_range.bucket_starts()}
    for group in _bar_groups(project, filters, series_of):
        totals.add(group["n"], group["failed"], group["auth"])
        # Aware datetimes hash and compare by the moment they name, whatever their tzinfo.
        bucket = buckets[group["bucket"]]
        bucket.counts.add(group["n"], group["failed"], group["auth"])
        bucket.by_series[group["series"]] = bucket.by_series.get(group["series"], 0) + group["n"]
        without_address += group["without_address"]

    distinct_ips, busiest_ips = _busiest_addresses(project, filters)
    top_addresses = [
        AddressRow(
            ip=ip,
            requests=n,
            share=n * 100 / totals.requests,
            first_seen=first,
            last_seen=last,
        )
        for ip, n, first, last in busiest_ips
    ]

    seen_keys = {pk for kind, pk in callers if kind == "key"}
    # Each key revoked in the range was working in it: after a mass rotation, thousands.
    quiet = _working_during(project_keys, time_range).exclude(pk__in=seen_keys)
    quiet_keys = list(quiet[: CALLERS_SHOWN + 1])
    more_quiet = quiet.count() - CALLERS_SHOWN if len(quiet_keys) > CALLERS_SHOWN else 0
    return ProjectOverview(
        filters=filters,
        stack=stack,
        totals=totals,
        distinct_ips=distinct_ips,
        calls_without_address=without_address,
        buckets=list(buckets.values()),
        series=series,
        top_addresses=top_addresses,
        top_agents=_busiest_agents(project, filters),
        callers=[caller for _, caller in shown],
        more_callers=len(ranked) - len(shown),
        quiet_keys=quiet_keys[:CALLERS_SHOWN],
        more_quiet_keys=more_quiet,
        dropped=usage_dropped_between(time_range.since, time_range.until),
    )


def _working_during(keys: QuerySet[ApiKey], time_range: TimeRange) -> QuerySet[ApiKey]:
    """The keys that could be called at some time in the range: made before it ended, not
    revoked or expired before it began. Ended keys are kept for ever (the audit trail names
    them), so a project that rotates its keys has thousands; only these can be quiet."""
    return keys.filter(
        Q(revoked_at__isnull=True) | Q(revoked_at__gt=time_range.since),
        Q(expires_at__isnull=True) | Q(expires_at__gt=time_range.since),
        created_at__lt=time_range.until,
    )


# -- Where the figures are read from ---------------------------------------------------------

type _Span = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class Tiles:
    """A time range cut into what each source can answer exactly: whole UTC days (the
    daily roll-ups), whole hours (the hourly ones) and the minutes at the range's ends
    (only the log)."""

    days: list[_Span]
    hours: list[_Span]
    minutes: list[_Span]

    @classmethod
    def of(cls, since: datetime, until: datetime, *, with_days: bool = True) -> Tiles:
        days: list[_Span] = []
        pieces = [(since, until)]
        if with_days:
            first, last = _ceil(since, DAY), day_of(until)
            if first < last:
                days = [(first, last)]
                pieces = [(since, first), (last, until)]
        hours: list[_Span] = []
        minutes: list[_Span] = []
        for start, end in pieces:
            first, last = _ceil(start, HOUR), hour_of(end)
            if first < last:
                hours.append((first, last))
                minutes += [(start, first), (last, end)]
            else:
                minutes.append((start, end))
        return cls(days, hours, [(a, b) for a, b in minutes if a < b])

    @classmethod
    def log_only(cls, since: datetime, until: datetime) -> Tiles:
        return cls([], [], [(since, until)])


def _ceil(moment: datetime, unit: timedelta) -> datetime:
    floor = day_of(moment) if unit == DAY else hour_of(moment)
    return floor if floor == moment else floor + unit


def _within(field: str, spans: list[_Span]) -> Q:
    """Rows whose `field` falls in any of the spans."""
    within = Q()
    for since, until in spans:
        within |= Q(**{f"{field}__gte": since, f"{field}__lt": until})
    return within


def _rolled_calls(
    model: type[ProjectCallsRollup], project: Project, filters: OverviewFilters, spans: list[_Span]
) -> QuerySet[Any]:
    return model._default_manager.filter(
        _within("start", spans), filters.by_caller_and_outcome(), project=project
    )


def _logged_calls(project: Project, filters: OverviewFilters, spans: list[_Span]) -> QuerySet[Any]:
    return filters.records(project).filter(_within("created_at", spans))


def _call_sources(
    project: Project, filters: OverviewFilters, *, with_days: bool
) -> list[tuple[QuerySet[Any], bool]]:
    """The roll-ups and log rows that together hold the matching calls, each once, and
    whether each is a roll-up. The roll-ups know every filter but the address."""
    since, until = filters.time_range.since, filters.time_range.until
    if filters.ip:
        tiles = Tiles.log_only(since, until)
    else:
        tiles = Tiles.of(since, until, with_days=with_days)
    sources: list[tuple[QuerySet[Any], bool]] = []
    if tiles.days:
        sources.append((_rolled_calls(ProjectUsageDay, project, filters, tiles.days), True))
    if tiles.hours:
        sources.append((_rolled_calls(ProjectUsageHour, project, filters, tiles.hours), True))
    if tiles.minutes:
        sources.append((_logged_calls(project, filters, tiles.minutes), False))
    return sources


def _callers(project: Project, filters: OverviewFilters) -> dict[_CallerId, CallerRow]:
    """Each key's matching calls (its client tokens' included) and each PAT's, counted,
    with the last of them. The database adds them up: a row per caller and source."""
    callers: dict[_CallerId, CallerRow] = {}
    for rows, rolled in _call_sources(project, filters, with_days=True):
        latest = Max("last_call") if rolled else Max("created_at")
        grouped = (
            rows.values("api_key_id", "personal_token_id")
            .annotate(**_counted(rolled), last=latest)
            .order_by()
        )
        for row in grouped:
            if row["api_key_id"] is not None:
                caller_id: _CallerId = ("key", row["api_key_id"])
            else:
                caller_id = ("pat", row["personal_token_id"] or 0)
            caller = callers.setdefault(caller_id, CallerRow())
            caller.counts.add(row["n"], row["failed"], row["auth"])
            last = _as_utc(row["last"])
            if caller.last_call is None or last > caller.last_call:
                caller.last_call = last
    return callers


def _bar_groups(project: Project, filters: OverviewFilters, series_of: _SeriesOf) -> list[_Group]:
    """The matching calls counted per bar and series (as `_counted`), with how many came
    without an address: a row per bar, series and source, whatever the number of keys. A
    bar may come more than once (from a roll-up and from the log): every use of them adds
    up. A day's roll-up cannot be cut into hours, so a chart by the hour reads the hourly
    roll-up and the log only; a roll-up whose rows are the chart's bars is not truncated
    again."""
    by_day = filters.time_range.by_day
    step = "day" if by_day else "hour"
    groups: list[_Group] = []
    for rows, rolled in _call_sources(project, filters, with_days=by_day):
        bucket: Expression | F
        if rolled:
            without_address: Aggregate = Sum("without_address")
            bar = rows.model is _bar_rollup(by_day)
            bucket = F("start") if bar else Trunc("start", step, tzinfo=UTC)
        else:
            without_address = Count("id", filter=Q(ip__isnull=True))
            bucket = Trunc("created_at", step, tzinfo=UTC)
        groups += (
            rows.values(bucket=bucket, series=series_of)
            .annotate(**_counted(rolled), without_address=without_address)
            .order_by()
        )
    return groups


def _counted(rolled: bool) -> dict[str, Aggregate]:
    """The calls, those that failed and those refused (as `Counts`), in a group of a
    roll-up's rows or of the log's."""
    return {
        "n": _calls(rolled),
        "failed": _calls(rolled, ~Q(outcome=Outcome.OK)),
        "auth": _calls(rolled, Q(outcome__in=AUTH_FAILURES)),
    }


def _calls(rolled: bool, matching: Q | None = None) -> Aggregate:
    """How many calls (that match), in a roll-up's rows or in the log's."""
    return Sum("requests", filter=matching, default=0) if rolled else Count("id", filter=matching)


def _bar_rollup(by_day: bool) -> type[ProjectCallsRollup]:
    return ProjectUsageDay if by_day else ProjectUsageHour


def _busiest_agents(project: Project, filters: OverviewFilters) -> list[AgentRow]:
    agents: dict[str, Counts] = {}
    for rows, rolled in _call_sources(project, filters, with_days=True):
        grouped = rows.exclude(agent="").values("agent").annotate(**_counted(rolled)).order_by()
        for row in grouped:
            agents.setdefault(row["agent"], Counts()).add(row["n"], row["failed"], row["auth"])
    ranked = sorted(agents.items(), key=lambda item: (-item[1].requests, item[0]))
    return [AgentRow(agent, counts) for agent, counts in ranked[:TOP_SHOWN]]


type _AddressGroup = tuple[str, int, datetime, datetime]  # ip, calls, first, last


def _address_sources(project: Project, filters: OverviewFilters) -> list[QuerySet[Any]]:
    """The roll-ups and log rows that together hold the matching calls with an address,
    each grouped by address. The roll-ups by address know the outcome but not the key or
    token type: with those filters (or an address), the log answers the whole range."""
    since, until = filters.time_range.since, filters.time_range.until
    if filters.api_key is not None or filters.token_kind or filters.ip:
        tiles = Tiles.log_only(since, until)
    else:
        tiles = Tiles.of(since, until)
    rolled = {"n": Sum("requests"), "first": Min("first_seen"), "last": Max("last_seen")}
    sources: list[QuerySet[Any]] = []
    for model, spans in ((ProjectAddressDay, tiles.days), (ProjectAddressHour, tiles.hours)):
        if spans:
            rows = model.objects.filter(_within("start", spans), project=project)
            if filters.outcome:
                rows = rows.filter(outcome=filters.outcome)
            sources.append(rows.values("ip").annotate(**rolled))
    if tiles.minutes:
        sources.append(
            _logged_calls(project, filters, tiles.minutes)
            .exclude(ip__isnull=True)
            .values("ip")
            .annotate(n=Count("id"), first=Min("created_at"), last=Max("created_at"))
        )
    return sources


def _busiest_addresses(
    project: Project, filters: OverviewFilters
) -> tuple[int, list[_AddressGroup]]:
    """How many addresses the matching calls came from, and the busiest of them."""
    sources = _address_sources(project, filters)
    if len(sources) == 1:
        # One source: the database ranks them, and counts every group (before the LIMIT)
        # in the same scan.
        rows = list(
            sources[0]
            .annotate(addresses=Window(Count("*")))
            .order_by("-n", "-last", "ip")[:TOP_SHOWN]
        )
        return (
            rows[0]["addresses"] if rows else 0,
            [(str(r["ip"]), r["n"], _as_utc(r["first"]), _as_utc(r["last"])) for r in rows],
        )
    merged: dict[str, list[Any]] = {}
    for source in sources:
        for row in source.order_by():
            ip, first, last = str(row["ip"]), _as_utc(row["first"]), _as_utc(row["last"])
            if ip in merged:
                seen = merged[ip]
                seen[0] += row["n"]
                seen[1] = min(seen[1], first)
                seen[2] = max(seen[2], last)
            else:
                merged[ip] = [row["n"], first, last]
    ranked = sorted(
        merged.items(), key=lambda item: (-item[1][0], -item[1][2].timestamp(), _ip_order(item[0]))
    )
    return len(merged), [(ip, n, first, last) for ip, (n, first, last) in ranked[:TOP_SHOWN]]


def _ip_order(ip: str) -> tuple[int, int]:
    """As PostgreSQL orders inet: IPv4 before IPv6, then by the address."""
    address = ipaddress.ip_address(ip)
    return address.version, int(address)


def usage_dropped_between(since: datetime, until: datetime) -> int:
    """Usage entries the write-behind had to drop (core/write_behind.py: a database away
    for longer than the buffers last, or an entry that fails on its own content), counted
    in the hours from `since` to `until`. A dropped entry may not say whose it was, so the
    count is the service's: every project's overview shows it, as a warning that its
    figures for that time may be low. It is 0 unless something went badly wrong.
    With them, the stream's entries trimmed before they were written (core/write_behind.py,
    `trimmed`): each was an answered call, counted under the stream, not the usage channel,
    and the overview said nothing had been lost."""
    lost_calls = Q(channel="usage") | Q(channel="stream", reason="trimmed")
    dropped = UsageDrop.objects.filter(
        lost_calls, hour__gte=hour_of(since), hour__lte=until
    ).aggregate(n=Sum("count"))["n"]
    return dropped or 0


def _series(
    stack: str,
    filters: OverviewFilters,
    ranked: list[tuple[_CallerId, CallerRow]],
    callers: dict[_CallerId, CallerRow],
) -> tuple[list[Series], _SeriesOf]:
    """The chart's series for this stacking, and which series a row's calls belong to."""
    if stack == Stack.OUTCOME:
        outcomes = [(o, label) for o, label in Outcome.choices]
        if filters.outcome:
            outcomes = [(o, label) for o, label in outcomes if o == filters.outcome]
        series = [Series(o, str(label), OUTCOME_COLOURS[o]) for o, label in outcomes]
        return series, F("outcome")

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
        series_of = Case(
            *(When(api_key_id=pk, then=Value(f"key-{pk}")) for pk in named),
            When(api_key_id__isnull=True, then=Value("pat")),
            default=Value("other"),
        )
        return series, series_of

    kinds = [k for k, _ in TokenKind.choices if not filters.token_kind or k == filters.token_kind]
    series = [Series(k, TokenKind(k).label, KIND_COLOURS[k]) for k in kinds]
    return series, F("token_kind")


def _as_utc(moment: object) -> datetime:
    assert isinstance(moment, datetime)
    return moment.astimezone(UTC)
