"""Reads for the per-key usage page: pages of the log, and figures from the roll-ups.

The log (UsageRecord) can hold millions of rows per key, so it is only ever read one
index-backed keyset page at a time, newest first on (created_at, id): never OFFSET, never
COUNT. Everything that adds up reads the roll-ups written beside it in the same
transaction (usage/writer.py): UsageHour for calls per hour by outcome, UsageIp for each
address with first and last seen, the key's own apart from its client tokens'.

The roll-ups also keep filtered pages cheap. A filter that cannot match by the roll-ups
(an address never seen, an outcome that never happened) answers without reading the log,
and otherwise the scan is fenced to the hours in which matches can be. Filters that imply
a failed call use the partial index over failed calls (usage_key_errors_time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.db.models import Count, F, Max, Min, Q
from django.db.models.expressions import Combinable

from apikeys.models import ApiKey, ClientToken
from core.network_lookup import address_or_network
from core.paging import KeysetPage, keyset_page
from usage.models import Outcome, UsageHour, UsageIp, UsageRecord, UsageRecordQuerySet

PAGE_SIZE = 50
NEWEST_FIRST = ("-created_at", "-id")
OLDEST_FIRST = ("created_at", "id")
HOUR = timedelta(hours=1)
ADDRESSES_SHOWN = 10
# How much of a log a user agent or path filter searches at once. Neither column has an
# index (one is not worth its cost on every write of the log): the filter tests each row
# the page's walk of the time index passes, so a rare user agent, unbounded, made the
# first page read every call the key or project ever made. The forms bound it
# (usage.forms.TextLogFilterForm); on PostgreSQL the bound prunes the walk to a day's
# partitions.
TEXT_SEARCH_SPAN = timedelta(hours=24)

# UsageHour's column for each outcome.
OUTCOME_COLUMN: dict[str, str] = {
    Outcome.OK: "ok",
    Outcome.CLIENT_ERROR: "client_errors",
    Outcome.AUTH_FAILURE: "auth_failures",
    Outcome.REVOKED_KEY: "revoked_key_uses",
    Outcome.SERVER_ERROR: "server_errors",
}
ALL_OUTCOMES: frozenset[str] = frozenset(OUTCOME_COLUMN)


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


# -- Cursors --------------------------------------------------------------------------------

_CURSOR_TIME = "%Y%m%dT%H%M%S.%fZ"
_MAX_PK = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in the log, the (created_at, id) of a row. In a URL it reads
    `20250603T140211.123456Z_42`: no character in it needs escaping."""

    created_at: datetime
    pk: int

    @classmethod
    def of(cls, record: UsageRecord) -> Cursor:
        return cls(record.created_at, record.pk)

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """The cursor written in `text`; ValueError if it is not one."""
        moment, _, pk = text.strip().rpartition("_")
        if not (pk.isascii() and pk.isdigit()) or not 0 < int(pk) <= _MAX_PK:
            raise ValueError("not a cursor")
        created_at = datetime.strptime(moment, _CURSOR_TIME).replace(tzinfo=UTC)
        return cls(created_at, int(pk))

    def __str__(self) -> str:
        at = self.created_at.astimezone(UTC)
        # The year by hand: strftime's %Y writes year 1 as "1", which %Y does not read back.
        return f"{at.year:04d}{at:%m%dT%H%M%S.%fZ}_{self.pk}"


# -- The log --------------------------------------------------------------------------------

# A key's log, narrowed to one kind of call (LogFilters.caller): those made with the key
# itself, or those of the client tokens it minted. Empty: both.
CALLER_KEY = "key"
CALLER_CLIENT_TOKENS = "client_tokens"


@dataclass(frozen=True, slots=True)
class LogFilters:
    """What the log is narrowed to; empty fields do not narrow. `until` is exclusive."""

    outcome: str = ""
    status: int | None = None
    ip: str = ""
    since: datetime | None = None
    until: datetime | None = None
    # A client token this key minted (its public id): the drill-down into its calls.
    client_token: str = ""
    # The agent the calls named (UsageRecord.agent): what a new-agent alert opens.
    agent: str = ""
    # Any part of the user agent, and the start of the path, in any case: at most
    # TEXT_SEARCH_SPAN of calls (since to until) is searched for either.
    user_agent: str = ""
    path: str = ""
    # In a key's log: CALLER_KEY, its own calls; CALLER_CLIENT_TOKENS, its client tokens'.
    caller: str = ""

    def outcomes(self) -> frozenset[str]:
        """The outcomes a matching call can have: a status implies its outcome."""
        possible = set(ALL_OUTCOMES)
        if self.outcome:
            possible &= {self.outcome}
        if self.status is not None:
            probe = Outcome.of(self.status, "")
            if probe is Outcome.AUTH_FAILURE:  # a 401 is also what a revoked key gets
                possible &= {Outcome.AUTH_FAILURE, Outcome.REVOKED_KEY}
            else:
                possible &= {probe}
        return frozenset(possible)

    def ip_condition(self) -> Q:
        """The address, or every address of the network (`ip` holds a "/" then), on the
        log's rows and on UsageIp's alike (both columns are `ip`)."""
        return address_or_network(self.ip)

    def apply(self, records: UsageRecordQuerySet) -> UsageRecordQuerySet:
        if self.outcome:
            records = records.filter(outcome=self.outcome)
        if self.status is not None:
            records = records.filter(status=self.status)
        if self.ip:
            records = records.filter(self.ip_condition())
        if self.agent:
            records = records.filter(agent=self.agent)
        # % and _ are escaped in these lookups (core.text_lookup): typed, they match
        # themselves.
        if self.user_agent:
            records = records.filter(user_agent__contains_any_case=self.user_agent)
        if self.path:
            # Any case: SQLite's LIKE ignores ASCII case whatever Django asks, so the
            # same filter finds the same calls on both databases.
            records = records.filter(path__starts_any_case=self.path)
        if self.since is not None:
            records = records.filter(created_at__gte=self.since)
        if self.until is not None:
            records = records.filter(created_at__lt=self.until)
        # "Its client tokens" walks usage_key_tokens_time, which holds only their calls:
        # a few of them are found without reading the key's own millions. "The key
        # itself" walks usage_key_own_time, without reading its browsers' calls. A PAT's
        # log (the same callers) walks usage_pat_tokens_time and usage_pat_own_time.
        if self.caller == CALLER_KEY:
            records = records.filter(client_token__isnull=True)
        elif self.caller == CALLER_CLIENT_TOKENS:
            records = records.filter(client_token__isnull=False)
        if self.client_token:
            # By the token's id, not a join on its public id: the (client_token, time)
            # index then hands over the token's newest calls without reading the key's.
            token_id = (
                ClientToken.objects.filter(public_id=self.client_token)
                .values_list("pk", flat=True)
                .first()
            )
            records = records.filter(client_token_id=token_id) if token_id else records.none()
        if Outcome.OK not in self.outcomes():
            # Said outright so that the database can prove the partial index applies.
            records = records.exclude(outcome=Outcome.OK)
        return records


@dataclass(frozen=True, slots=True)
class LogPage:
    """Up to a page of rows, newest first (or oldest first), and where the pages beside it
    start. The cursors say time whatever the order: `before` is older, `after` newer."""

    rows: list[UsageRecord]
    newer: Cursor | None  # newer rows exist: they are at `?after=<newer>`
    older: Cursor | None  # older rows exist: they are at `?before=<older>`
    is_first: bool  # nothing comes before this page in its order (as of this read)
    oldest_first: bool = False

    @property
    def is_newest(self) -> bool:
        """Nothing is newer than this page (as of this read)."""
        return not self.newer if self.oldest_first else self.is_first


def usage_log_page(
    *,
    api_key: ApiKey,
    filters: LogFilters,
    before: Cursor | None = None,
    after: Cursor | None = None,
    size: int = PAGE_SIZE,
    oldest_first: bool = False,
) -> LogPage:
    """One page of the key's calls, newest first (or oldest first): the first, those just
    older than `before`, or those just newer than `after`. One query of at most size + 1
    rows, on the (api_key, created_at, id) index, plus a few roll-up reads when filtered."""
    fence = _fence(api_key, filters)
    if fence is None:
        at_start = before is None and after is None
        return LogPage([], None, None, is_first=at_start, oldest_first=oldest_first)
    records = fence.apply(
        filters.apply(UsageRecord.objects.for_key(api_key).select_related("client_token"))
    )
    return log_page_of(records, before=before, after=after, size=size, oldest_first=oldest_first)


def _key(cursor: Cursor | None) -> tuple[datetime, int] | None:
    return (cursor.created_at, cursor.pk) if cursor else None


def log_page_of(
    records: UsageRecordQuerySet,
    *,
    before: Cursor | None,
    after: Cursor | None,
    size: int,
    oldest_first: bool = False,
) -> LogPage:
    """A page of `records` around a cursor (the key's log, the project's, a PAT's), newest
    first, or oldest first: then the rows newer than `after` follow, those older than
    `before` precede, and the index is walked the other way."""
    if oldest_first:
        page = keyset_page(
            records, order=OLDEST_FIRST, following=_key(after), preceding=_key(before), size=size
        )
        newer, older = page.next, page.previous
    else:
        page = keyset_page(
            records, order=NEWEST_FIRST, following=_key(before), preceding=_key(after), size=size
        )
        newer, older = page.previous, page.next
    return LogPage(
        page.rows,
        newer=Cursor(*newer) if newer else None,
        older=Cursor(*older) if older else None,
        is_first=page.is_first,
        oldest_first=oldest_first,
    )


@dataclass(frozen=True, slots=True)
class _Fence:
    """[low, high): outside it, by the roll-ups, no row can match."""

    low: datetime | None = None
    high: datetime | None = None

    def apply(self, records: UsageRecordQuerySet) -> UsageRecordQuerySet:
        if self.low is not None:
            records = records.filter(created_at__gte=self.low)
        if self.high is not None:
            records = records.filter(created_at__lt=self.high)
        return records


def _fence(api_key: ApiKey, filters: LogFilters) -> _Fence | None:
    """Where in time matching rows can be, or None when they cannot be anywhere.

    Unfiltered and time-range pages need none: the index walks straight to them. An
    address or a rare outcome could otherwise make the scan pass over every row of the
    key to find a few matches, or none:
    - an address lies between its first and last seen, and nowhere if never seen (a
      network's addresses between the first first seen and the last last seen of them),
      read from the roll-up rows of the kind of call asked for (the key's own, its client
      tokens') when the filter names one;
    - failed outcomes (a 4xx/5xx status implies one) lie between the first and last hour
      whose count of them is not zero. Successes are everywhere; they need no fence.
    """
    low, high = filters.since, filters.until
    if filters.ip:
        addresses = UsageIp.objects.filter(filters.ip_condition(), api_key=api_key)
        if filters.caller:
            addresses = addresses.filter(via_client_tokens=filters.caller == CALLER_CLIENT_TOKENS)
        seen = addresses.aggregate(first=Min("first_seen"), last=Max("last_seen"))
        if seen["first"] is None:
            return None
        low = _later(low, seen["first"])
        high = _earlier(high, seen["last"] + timedelta(microseconds=1))

    outcomes = filters.outcomes()
    if not outcomes:
        return None
    if Outcome.OK not in outcomes:
        hours = (
            UsageHour.objects.filter(api_key=api_key)
            .annotate(matching=_sum_of(outcomes))
            .filter(matching__gt=0)
        )
        if low is not None:
            hours = hours.filter(hour__gte=hour_of(low))
        if high is not None:
            hours = hours.filter(hour__lt=high)
        first = hours.order_by("hour").values_list("hour", flat=True).first()
        if first is None:
            return None
        last = hours.order_by("-hour").values_list("hour", flat=True).first()
        assert last is not None
        low, high = _later(low, first), _earlier(high, last + HOUR)
    if low is not None and high is not None and low >= high:
        return None
    return _Fence(low, high)


def _sum_of(outcomes: frozenset[str]) -> Combinable:
    columns = [F(OUTCOME_COLUMN[o]) for o in sorted(outcomes)]
    total: Combinable = columns[0]
    for column in columns[1:]:
        total = total + column
    return total


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def _earlier(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a


# -- Figures from the roll-ups ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HourCounts:
    """Calls in one hour (or any span), by outcome as the charts group them."""

    start: datetime
    requests: int = 0
    ok: int = 0
    errors: int = 0  # client errors, auth failures and server errors
    revoked: int = 0  # calls with the key after it was revoked or expired
    latency_us_total: int = 0

    @classmethod
    def of(cls, start: datetime, row: UsageHour | None) -> HourCounts:
        if row is None:
            return cls(start)
        return cls(
            start=start,
            requests=row.requests,
            ok=row.ok,
            errors=row.client_errors + row.auth_failures + row.server_errors,
            revoked=row.revoked_key_uses,
            latency_us_total=row.latency_us_total,
        )

    @classmethod
    def total_of(cls, spans: Sequence[HourCounts]) -> HourCounts:
        """`spans` summed in one pass: what adding them one by one gives, without a
        HourCounts made for each step (a week's totals and days add up 168 hours, and the
        page asks for them several times)."""
        return cls(
            start=min(span.start for span in spans),
            requests=sum(span.requests for span in spans),
            ok=sum(span.ok for span in spans),
            errors=sum(span.errors for span in spans),
            revoked=sum(span.revoked for span in spans),
            latency_us_total=sum(span.latency_us_total for span in spans),
        )

    def __add__(self, other: HourCounts) -> HourCounts:
        return HourCounts(
            start=min(self.start, other.start),
            requests=self.requests + other.requests,
            ok=self.ok + other.ok,
            errors=self.errors + other.errors,
            revoked=self.revoked + other.revoked,
            latency_us_total=self.latency_us_total + other.latency_us_total,
        )

    @property
    def failed(self) -> int:
        return self.requests - self.ok

    @property
    def error_rate(self) -> float | None:
        """Failed calls (errors and revoked-key calls) per call; None without calls."""
        return self.failed / self.requests if self.requests else None

    @property
    def error_percent(self) -> float | None:
        rate = self.error_rate
        return None if rate is None else rate * 100

    @property
    def average_latency_ms(self) -> float | None:
        return self.latency_us_total / self.requests / 1000 if self.requests else None


@dataclass(frozen=True, slots=True)
class UsageWindow:
    """The last `len(hours)` hours, the current one included, of one key."""

    name: str
    start: datetime
    end: datetime  # exclusive: the end of the current hour
    hours: list[HourCounts]
    distinct_ips: int  # the key's own addresses (calls made with the key itself)
    token_ips: int = 0  # the addresses its client tokens were used from

    @property
    def totals(self) -> HourCounts:
        return HourCounts.total_of(self.hours)

    @property
    def days(self) -> list[HourCounts]:
        """The hours summed per UTC day, oldest first."""
        days: dict[date, list[HourCounts]] = {}
        for hour in self.hours:
            days.setdefault(hour.start.date(), []).append(hour)
        return [HourCounts.total_of(hours) for hours in days.values()]


@dataclass(frozen=True, slots=True)
class KeyUsageSummary:
    """The figures at the top of a key's usage page, from the roll-ups only
    (key_usage_summary(), four queries however many calls the key made)."""

    windows: list[UsageWindow]  # the last 24 hours, then the last 7 days
    addresses: list[UsageIp]  # the key's own, seen in the longest window, most recent first
    new_since: datetime  # an address first seen from then on is new (new_since())
    more_addresses: int  # seen in the longest window but not listed
    revoked_key_uses: int  # calls, ever, refused because the key was revoked or expired
    # Its client tokens' addresses (browsers), listed apart: the key's allowed networks
    # do not govern them, and they are never offered as networks to allow.
    token_addresses: list[UsageIp] = field(default_factory=list)
    more_token_addresses: int = 0


WINDOWS: tuple[tuple[str, int], ...] = (("Last 24 hours", 24), ("Last 7 days", 24 * 7))


def new_since(now: datetime) -> datetime:
    """Where "new" starts for a key's addresses and networks: the start of the usage page's
    "Last 24 hours" window (the next whole hour, less a day). The page's "new" badge and
    the networks left out of the allowed list it fills in (usage.networks) both read it,
    so that a network left out is one whose address is marked new."""
    return hour_of(now) + HOUR - WINDOWS[0][1] * HOUR


def key_usage_summary(
    *, api_key: ApiKey, now: datetime, addresses_shown: int = ADDRESSES_SHOWN
) -> KeyUsageSummary:
    """The figures for the top of the usage page. Reads only the roll-ups: a few hundred
    rows at most, however many calls the key has made. Five queries."""
    end = hour_of(now) + HOUR
    longest = max(hours for _, hours in WINDOWS)
    rows = {
        row.hour: row
        for row in UsageHour.objects.filter(
            api_key=api_key, hour__gte=end - longest * HOUR, hour__lt=end
        )
    }
    starts = [end - hours * HOUR for _, hours in WINDOWS]
    # An address was seen in a window if its last call was: one pass over the key's rows,
    # counting its own addresses and its client tokens' apart.
    ip_counts = UsageIp.objects.filter(api_key=api_key).aggregate(
        **{
            f"{kind}{i}": Count("pk", filter=Q(last_seen__gte=start, via_client_tokens=via))
            for i, start in enumerate(starts)
            for kind, via in (("own", False), ("tokens", True))
        }
    )
    windows = [
        UsageWindow(
            name=name,
            start=start,
            end=end,
            hours=[HourCounts.of(start + i * HOUR, rows.get(start + i * HOUR)) for i in range(n)],
            distinct_ips=ip_counts[f"own{index}"] or 0,
            token_ips=ip_counts[f"tokens{index}"] or 0,
        )
        for index, ((name, n), start) in enumerate(zip(WINDOWS, starts, strict=True))
    ]
    widest = windows[-1]
    recent = UsageIp.objects.filter(api_key=api_key, last_seen__gte=widest.start).order_by(
        "-last_seen", "ip"
    )
    addresses = list(recent.own()[:addresses_shown])
    token_addresses = list(recent.via_client_tokens()[:addresses_shown])
    return KeyUsageSummary(
        windows=windows,
        addresses=addresses,
        new_since=new_since(now),
        more_addresses=max(0, widest.distinct_ips - len(addresses)),
        revoked_key_uses=revoked_key_uses(api_key=api_key, now=now),
        token_addresses=token_addresses,
        more_token_addresses=max(0, widest.token_ips - len(token_addresses)),
    )


ADDRESS_ORDER = ("-last_seen", "-id")


@dataclass(frozen=True, slots=True)
class AddressCounts:
    """How many addresses a key has of each kind, for the address list's two tabs."""

    own: int
    via_client_tokens: int


def key_address_counts(*, api_key: ApiKey) -> AddressCounts:
    """Every address of the key, its own and its client tokens', counted: one pass."""
    counts = UsageIp.objects.filter(api_key=api_key).aggregate(
        own=Count("pk", filter=Q(via_client_tokens=False)),
        tokens=Count("pk", filter=Q(via_client_tokens=True)),
    )
    return AddressCounts(own=counts["own"] or 0, via_client_tokens=counts["tokens"] or 0)


def key_addresses_page(
    *,
    api_key: ApiKey,
    via_client_tokens: bool = False,
    before: Cursor | None,
    after: Cursor | None,
    size: int = PAGE_SIZE,
) -> KeysetPage[UsageIp]:
    """A page of every address the key itself was used from (or, `via_client_tokens`, its
    client tokens), most recently seen first (the usage page lists ten of the last seven
    days). One roll-up row per address: a key's rows are sorted on each read (no index has
    last_seen), a few thousand at the most for a key used as keys are; a key's botnet of a
    hundred thousand sorts in tens of milliseconds."""
    return keyset_page(
        UsageIp.objects.filter(api_key=api_key, via_client_tokens=via_client_tokens),
        order=ADDRESS_ORDER,
        following=_key(before),
        preceding=_key(after),
        size=size,
    )


def revoked_key_uses(*, api_key: ApiKey, now: datetime) -> int:
    """How many calls were refused because the key was revoked or had expired, after it
    ended: ApiKeyQuerySet.with_refusals_since_end, as the key list and alerts count them."""
    ends = [api_key.revoked_at, api_key.expires_at]
    if not any(e is not None and e <= now for e in ends):
        return 0
    counted = ApiKey.objects.filter(pk=api_key.pk).with_refusals_since_end()
    # An annotation the stubs cannot see through the queryset method that makes it.
    n = counted.values_list("refusals_since_end", flat=True).first()  # type: ignore[misc]
    return n or 0
