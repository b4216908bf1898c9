"""Writing the usage log: one row per identified call, and the roll-ups beside it.

The API hands each call's UsageEntry to `usage_defer()` once it has answered; the entry
travels as a write-behind record (core/write_behind.py: the Redis stream and
`manage.py ingest_usage`, or this process's buffer) and is written here, in batches, in
one transaction: the rows; the roll-ups, one upsert per group of the batch (per key and
hour, and per key and address apart for its own calls and its client tokens', for the key
page; per project hour and day, by caller and by
address, for the project overview: usage/models.py); and "last used" for tokens not
marked in the last minute. One transaction per batch instead of per call is what keeps
logging cheap (see `make bench`), and the roll-ups always agree with the rows.

A batch may be written twice (an acknowledgement lost after its commit): a row that is
already there (same request id and time) is skipped, and only the rows actually inserted
count towards the roll-ups, so nothing is counted twice. Calls that identified nobody are
only counted per hour and error code.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, models, transaction
from django.db.models import Max, Min, Q, QuerySet
from django.utils import timezone

from apikeys.models import ApiKey, ClientToken, PersonalAccessToken, Token
from core import write_behind
from core.bulk_insert import insert_new, upsert
from core.forms import FIRST_YEAR, LAST_YEAR
from usage.models import (
    LateUsage,
    Outcome,
    ProjectAddressDay,
    ProjectAddressHour,
    ProjectAddressRollup,
    ProjectCallsRollup,
    ProjectUsageDay,
    ProjectUsageHour,
    UnattributedCalls,
    UsageDrop,
    UsageHour,
    UsageIp,
    UsageRecord,
    on_the_client_api,
)

LAST_USED_RESOLUTION = timedelta(minutes=1)
# A row written this long after (or before) its call is late: its batch is noted
# (LateUsage) so that the detector, which reads only the recent partitions, reaches for
# it. Well under alerts.detection.READ_MARGIN, which covers everything not noted.
LATE_AFTER = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class UsageEntry:
    """One call, as the API layer saw it. All token ids are None for unattributed calls.

    A client token's call carries the client token and the key (or PAT) that minted it; a
    personal access token's call carries the PAT and, if it named one, the project.
    """

    created_at: datetime
    project_id: int | None
    api_key_id: int | None
    token_kind: str
    method: str
    path: str
    status: int
    error_code: str
    latency_us: int
    ip: str | None
    user_agent: str
    request_id: str
    client_token_id: int | None = None
    personal_token_id: int | None = None
    agent: str = ""
    # The hash of the token a call carried when it could not be identified (the database
    # did not answer): resolved to its token when the entry is written.
    token_digest: str = ""

    @property
    def outcome(self) -> Outcome:
        return Outcome.of(self.status, self.error_code)

    @property
    def is_attributed(self) -> bool:
        return (self.api_key_id or self.client_token_id or self.personal_token_id) is not None

    def payload(self) -> dict[str, Any]:
        """The entry as a write-behind record (JSON). By hand: dataclasses.asdict() deep-
        copies every field, which costs more than the rest of this on the API's path."""
        return {name: getattr(self, name) for name in _PAYLOAD_FIELDS} | {
            "created_at": self.created_at.isoformat()
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> UsageEntry:
        entry = cls(**{**payload, "created_at": _in_utc(payload["created_at"])})
        if not isinstance(entry.request_id, str) or not _REQUEST_ID.fullmatch(entry.request_id):
            raise ValueError("a call's request id is not a word of at most 40 characters")
        return entry


def _in_utc(text: str) -> datetime:
    """A record's time, in UTC, as the API writes it. The roll-ups cut it to its hour and
    day as it stands: one in another zone (23:45+05:30, made by hand) was counted in an
    hour starting at 17:30 UTC, which no page asks for. ValueError (the record is
    dropped) for one without a zone, whose moment depends on the reader, and for one
    outside the years every page of the dashboard takes (core.forms): a call dated 9999
    (made by hand) was written, and the key's call log narrowed to its address or to
    failed calls was a 500, its bounds past Python's last date."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("a call's time names no time zone")
    moment = moment.astimezone(UTC)
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise ValueError("a call's time is outside the years the dashboard shows")
    return moment


# A request id is a word (the API's: req_ and 24 hex digits, api.errors.new_request_id),
# which the call log puts in each call's address (usage:project_call). One made by hand
# on the stream that no address can hold ("", "a/b") was written, and every page of its
# project's call log listing it was a 500, for everyone, for as long as it was kept.
_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,40}", re.ASCII)

_PAYLOAD_FIELDS = tuple(f.name for f in dataclasses.fields(UsageEntry) if f.name != "created_at")


type _Truncate = Callable[[datetime], datetime]


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _day(moment: datetime) -> datetime:
    """The UTC day a call was made on, as its midnight."""
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


_OUTCOME_COLUMN = {
    Outcome.OK: "ok",
    Outcome.CLIENT_ERROR: "client_errors",
    Outcome.AUTH_FAILURE: "auth_failures",
    Outcome.REVOKED_KEY: "revoked_key_uses",
    Outcome.SERVER_ERROR: "server_errors",
}


def usage_write(entries: list[UsageEntry]) -> None:
    """Write a batch of entries and their roll-ups in one transaction."""
    entries = _attributed_by_digest(_once_each(entries))
    attributed = [e for e in entries if e.is_attributed]
    unattributed = [e for e in entries if not e.is_attributed]
    with transaction.atomic():
        if attributed:
            _in_commit_order()
        inserted = _insert_rows(attributed)
        fresh = [e for e in attributed if e.request_id in inserted]
        _note_if_late(fresh)
        # The roll-ups are per API key: a key's own calls and those of the tokens it minted.
        by_key = [e for e in fresh if e.api_key_id is not None]
        _upsert_hours(by_key)
        _upsert_ips(by_key)
        # The project overview's: every call that names a project, whoever made it.
        in_project = [e for e in fresh if e.project_id is not None]
        _upsert_project_calls(in_project, ProjectUsageHour, _hour)
        _upsert_project_calls(in_project, ProjectUsageDay, _day)
        _upsert_project_addresses(in_project, ProjectAddressHour, _hour)
        _upsert_project_addresses(in_project, ProjectAddressDay, _day)
        _mark_last_used(fresh)
        _count_unattributed(unattributed)


def _once_each(entries: list[UsageEntry]) -> list[UsageEntry]:
    """The batch with each call once. A call's entry can reach the stream twice (its
    XADD's reply lost, the worker buffered it and handed its buffer over at exit); read in
    one batch, both copies were "inserted" (the row once, by ON CONFLICT DO NOTHING) and
    both counted towards the roll-ups."""
    seen: set[tuple[str, datetime]] = set()
    kept = []
    for e in entries:
        call = (e.request_id, e.created_at)
        if call not in seen:
            seen.add(call)
            kept.append(e)
    return kept


# Any constant; it names the lock among this database's advisory locks.
_WRITE_LOCK = 0x7573616765  # "usage"


def _in_commit_order() -> None:
    """Hold the usage log's write lock until this transaction ends, so that batches take
    their ids in the order they commit: a row can never commit with an id below one that
    is already visible, and the detector's cursor (alerts/detection/run.py) reads every row
    exactly once. Batches are written one at a time anyway (they are few and large); on
    SQLite the database's own write lock does the same."""
    usage_write_lock()


def usage_write_lock() -> None:
    """Wait for, and hold until the transaction ends, the lock that every batch of the
    log is written under (PostgreSQL; on SQLite every write holds the database's)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_WRITE_LOCK])


def _note_if_late(fresh: list[UsageEntry]) -> None:
    """Note a batch holding a call more than LATE_AFTER before (or after) now, with an id
    at least the highest it holds. Under the write lock: no other batch takes ids between."""
    if not fresh:
        return
    now = timezone.now()
    oldest = min(e.created_at for e in fresh)
    newest = max(e.created_at for e in fresh)
    if now - LATE_AFTER <= oldest and newest <= now + LATE_AFTER:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The last id this session drew: at least the highest id of the batch.
            cursor.execute(
                "SELECT currval(pg_get_serial_sequence(%s, 'id'))", [UsageRecord._meta.db_table]
            )
        else:
            cursor.execute(f"SELECT max(id) FROM {UsageRecord._meta.db_table}")  # noqa: S608
        (last_id,) = cursor.fetchone()
    LateUsage.objects.create(last_id=last_id, oldest=oldest, newest=newest)


def usage_late_span(*, after_id: int) -> tuple[datetime, datetime] | None:
    """The oldest and newest call in the noted batches holding ids above `after_id`."""
    span = LateUsage.objects.filter(last_id__gt=after_id).aggregate(
        oldest=Min("oldest"), newest=Max("newest")
    )
    return None if span["oldest"] is None else (span["oldest"], span["newest"])


def usage_late_forget(*, up_to_id: int) -> None:
    """Forget the noted batches whose rows all have ids up to `up_to_id`: they are read."""
    LateUsage.objects.filter(last_id__lte=up_to_id).delete()


# Before any call: a previous secret without its end (none is written so) works for none.
NEVER = datetime.min.replace(tzinfo=UTC)


def _attributed_by_digest(entries: list[UsageEntry]) -> list[UsageEntry]:
    """Entries of calls that carried a token the API could not look up (the database was
    down), or did not (a key or PAT sent to the Client API), get that token's ids now, so
    they count on their key like any other call. A rolled key's previous secret counts on
    the key through its overlap, while it works on the API."""
    digests = {e.token_digest for e in entries if e.token_digest and not e.is_attributed}
    if not digests:
        return entries
    found: dict[str, dict[str, Any]] = {}
    # A rolled key's previous secret, only while it works (its overlap): past that it works
    # nowhere, says nothing of the key, and in a page would raise key_on_client_api, telling
    # the owners to roll a key whose secret there is already dead.
    works_until: dict[str, datetime] = {}
    # Only the columns used: a token's JSON (scopes, context) that Python cannot read back
    # (put there by hand, a restore) failed every batch holding one of its calls.
    keys = ApiKey.objects.filter(
        Q(token_hash__in=digests) | Q(previous_token_hash__in=digests)
    ).only("token_hash", "previous_token_hash", "previous_expires_at", "project_id")
    current: set[str] = set()
    for key in keys:
        ids = {"token_kind": key.kind.value, "project_id": key.project_id, "api_key_id": key.pk}
        previous = key.previous_token_hash
        if previous in digests and previous not in current:
            found[previous] = ids
            works_until[previous] = key.previous_expires_at or NEVER
        if key.token_hash in digests:
            found[key.token_hash] = ids
            current.add(key.token_hash)
            works_until.pop(key.token_hash, None)
    for ct in ClientToken.objects.filter(token_hash__in=digests).only(
        "token_hash", "project_id", "api_key_id", "personal_token_id"
    ):
        found[ct.token_hash] = {
            "token_kind": ct.kind.value,
            "project_id": ct.project_id,
            "client_token_id": ct.pk,
            "api_key_id": ct.api_key_id,
            "personal_token_id": ct.personal_token_id,
        }
    for pat in PersonalAccessToken.objects.filter(token_hash__in=digests).only("token_hash"):
        # Its project was in X-Project, which was never checked: the PAT alone, in no
        # project (the API names none for a call it could not identify; one an entry made
        # by hand named was kept, and the call shown there by a stranger's token).
        found[pat.token_hash] = {
            "token_kind": pat.kind.value, "personal_token_id": pat.pk, "project_id": None,
        }  # fmt: skip
    return [
        dataclasses.replace(e, **found[e.token_digest])
        if e.token_digest in found
        and not e.is_attributed
        and (e.token_digest not in works_until or e.created_at < works_until[e.token_digest])
        else e
        for e in entries
    ]


_ROW_FIELDS = (
    "created_at",
    "project",
    "api_key",
    "client_token",
    "personal_token",
    "token_kind",
    "method",
    "agent",
    "path",
    "status",
    "error_code",
    "outcome",
    "latency_us",
    "ip",
    "user_agent",
    "request_id",
)


def _insert_rows(entries: list[UsageEntry]) -> set[str]:
    """Insert the rows not there yet; the request ids of those inserted."""
    rows = [
        (
            e.created_at,
            e.project_id,
            e.api_key_id,
            e.client_token_id,
            e.personal_token_id,
            e.token_kind,
            e.method,
            e.agent[:64],
            e.path[:255],
            e.status,
            e.error_code,
            e.outcome.value,
            e.latency_us,
            e.ip,
            e.user_agent[:255],
            e.request_id,
        )
        for e in entries
    ]
    inserted = insert_new(
        UsageRecord,
        _ROW_FIELDS,
        rows,
        conflict=("request_id", "created_at"),
        returning="request_id",
    )
    return set(inserted)


def _upsert_hours(entries: list[UsageEntry]) -> None:
    columns = list(_OUTCOME_COLUMN.values())
    rows: dict[tuple[int, int, datetime], Counter[str]] = defaultdict(Counter)
    for e in entries:
        row = rows[(e.project_id, e.api_key_id, _hour(e.created_at))]  # type: ignore[index]
        row["requests"] += 1
        row[_OUTCOME_COLUMN[e.outcome]] += 1
        row["latency_us_total"] += e.latency_us
    if not rows:
        return
    table = UsageHour._meta.db_table
    counted = ["requests", *columns, "latency_us_total"]
    upsert(
        UsageHour,
        ["project", "api_key", "hour", *counted],
        [
            [project_id, key_id, hour, *(row[c] for c in counted)]
            for (project_id, key_id, hour), row in rows.items()
        ],
        conflict="api_key_id, hour",
        updates=", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in counted),
    )


# What the API answers when it will not let a key in at all (api/authentication.py): a
# call so refused says where the key was tried from, not where it works from. So does a
# key's own call to the Client API, always refused: it came from a browser.
REFUSED_AT_THE_DOOR = frozenset(
    {"expired_api_key", "suspended_api_key", "ip_not_allowed", "https_required"}
)


def _let_in(entry: UsageEntry) -> bool:
    return entry.error_code not in REFUSED_AT_THE_DOOR and not (
        entry.client_token_id is None and on_the_client_api(entry.path)
    )


def _upsert_ips(entries: list[UsageEntry]) -> None:
    """Each address of the batch, per key, apart for the key's own calls and its client
    tokens' (UsageIp.via_client_tokens), with how many of its calls were let in
    (UsageIp.admitted): one statement for the batch."""
    seen: dict[tuple[int | None, int | None, str, bool], list[Any]] = {}
    for e in entries:
        if not e.ip:
            continue
        key = (e.project_id, e.api_key_id, _one_spelling(e.ip), e.client_token_id is not None)
        let_in = 1 if _let_in(e) else 0
        if key in seen:
            first, last, count, admitted = seen[key]
            seen[key] = [
                min(first, e.created_at),
                max(last, e.created_at),
                count + 1,
                admitted + let_in,
            ]
        else:
            seen[key] = [e.created_at, e.created_at, 1, let_in]
    table = UsageIp._meta.db_table
    upsert(
        UsageIp,
        ["project", "api_key", "ip", "via_client_tokens", "first_seen", "last_seen"]
        + ["requests", "admitted"],
        [[*key, *counts] for key, counts in seen.items()],
        conflict="api_key_id, ip, via_client_tokens",
        updates=f"first_seen = CASE WHEN excluded.first_seen < {table}.first_seen "
        f"THEN excluded.first_seen ELSE {table}.first_seen END, "
        f"last_seen = CASE WHEN excluded.last_seen > {table}.last_seen "
        f"THEN excluded.last_seen ELSE {table}.last_seen END, "
        f"requests = {table}.requests + excluded.requests, "
        f"admitted = {table}.admitted + excluded.admitted",
    )


def _upsert_project_calls(
    entries: list[UsageEntry], model: type[ProjectCallsRollup], start_of: _Truncate
) -> None:
    rows: dict[tuple[Any, ...], list[Any]] = {}
    for e in entries:
        group = (
            e.project_id,
            start_of(e.created_at),
            e.token_kind,
            e.api_key_id,
            e.personal_token_id,
            e.outcome.value,
            e.agent[:64],
        )
        row = rows.setdefault(group, [0, 0, e.created_at])
        row[0] += 1
        row[1] += e.ip is None
        row[2] = max(row[2], e.created_at)
    table = model._meta.db_table
    upsert(
        model,
        ["project", "start", "token_kind", "api_key", "personal_token", "outcome", "agent"]
        + ["requests", "without_address", "last_call"],
        [[*group, n, no_ip, last] for group, (n, no_ip, last) in rows.items()],
        # The unique constraint's expressions (usage/models.py).
        conflict="project_id, start, token_kind, COALESCE(api_key_id, 0), "
        "COALESCE(personal_token_id, 0), outcome, agent",
        updates=f"requests = {table}.requests + excluded.requests, "
        f"without_address = {table}.without_address + excluded.without_address, "
        f"last_call = CASE WHEN excluded.last_call > {table}.last_call "
        f"THEN excluded.last_call ELSE {table}.last_call END",
    )


def _upsert_project_addresses(
    entries: list[UsageEntry], model: type[ProjectAddressRollup], start_of: _Truncate
) -> None:
    rows: dict[tuple[Any, ...], list[Any]] = {}
    for e in entries:
        if not e.ip:
            continue
        group = (e.project_id, start_of(e.created_at), _one_spelling(e.ip), e.outcome.value)
        row = rows.setdefault(group, [0, e.created_at, e.created_at])
        row[0] += 1
        row[1] = min(row[1], e.created_at)
        row[2] = max(row[2], e.created_at)
    table = model._meta.db_table
    upsert(
        model,
        ["project", "start", "ip", "outcome", "requests", "first_seen", "last_seen"],
        [[*group, *counts] for group, counts in rows.items()],
        conflict="project_id, start, ip, outcome",
        updates=f"requests = {table}.requests + excluded.requests, "
        f"first_seen = CASE WHEN excluded.first_seen < {table}.first_seen "
        f"THEN excluded.first_seen ELSE {table}.first_seen END, "
        f"last_seen = CASE WHEN excluded.last_seen > {table}.last_seen "
        f"THEN excluded.last_seen ELSE {table}.last_seen END",
    )


def _one_spelling(ip: str) -> str:
    """An address as the database compares it: "2001:DB8::1" and "2001:db8::1" are one
    inet, and two rows of one upsert that are one row there fail the whole statement.
    Text that is no address is kept as it is (its insert is refused, as before). IPv4
    has one spelling that ipaddress reads: kept without parsing."""
    if ":" not in ip:
        return ip
    try:
        return ipaddress.ip_address(ip).compressed
    except ValueError:
        return ip


def _mark_last_used(entries: list[UsageEntry]) -> None:
    """ "Last used" (time and address) of each token that made a successful call: at most
    one write a minute per token, whatever the request rate."""
    latest: dict[tuple[type[Token], int], UsageEntry] = {}
    for e in entries:
        if e.outcome is not Outcome.OK:
            continue
        # A client token's call marks the client token, not the key that minted it.
        target: tuple[type[Token], int]
        if e.client_token_id is not None:
            target = (ClientToken, e.client_token_id)
        elif e.personal_token_id is not None:
            target = (PersonalAccessToken, e.personal_token_id)
        elif e.api_key_id is not None:
            target = (ApiKey, e.api_key_id)
        else:
            continue
        if target not in latest or e.created_at > latest[target].created_at:
            latest[target] = e
    for (model, pk), e in latest.items():
        _unless_held(
            model._default_manager.filter(pk=pk).exclude(
                last_used_at__gt=e.created_at - LAST_USED_RESOLUTION
            )
        ).update(last_used_at=e.created_at, last_used_ip=e.ip)
    # A key that has ended but is still tried says so on the keys page ("still tried"),
    # and from where: the last refusal's address, written with its time (the same
    # throttle), so that the two always name one call. Only entries the API attributed
    # to a key (a token that is one): a made-up token's refusal marks nothing.
    refused: dict[int, UsageEntry] = {}
    for e in entries:
        if e.outcome is not Outcome.REVOKED_KEY or not e.api_key_id:
            continue
        if e.client_token_id is not None:
            continue
        if e.api_key_id not in refused or e.created_at > refused[e.api_key_id].created_at:
            refused[e.api_key_id] = e
    for pk, e in refused.items():
        at = e.created_at
        # Only once the key itself has ended: a rolled key's old secret refused after its
        # overlap is no sign that the key, still working, is held by someone else.
        _unless_held(
            ApiKey.objects.filter(pk=pk)
            .filter(Q(revoked_at__lte=at) | Q(expires_at__lte=at))
            .exclude(last_refused_at__gt=at - LAST_USED_RESOLUTION)
        ).update(last_refused_at=at, last_refused_ip=e.ip)


def _unless_held[M: models.Model](rows: QuerySet[M]) -> QuerySet[M]:
    """`rows`, less any another transaction is updating (FOR NO KEY UPDATE SKIP LOCKED on
    PostgreSQL: the lock an UPDATE takes, which leaves the usage rows' key checks free).

    The marks are written under the usage log's write lock: waiting here for a token's row
    (a roll in progress, an expiry reminder being mailed) would hold up every tenant's
    usage, and past the lock timeout send the whole batch round again. A mark skipped is
    made by the token's next call; until then the log itself has the call (what the
    unused-key check reads)."""
    return rows.model._default_manager.filter(
        pk__in=rows.order_by().select_for_update(skip_locked=True, no_key=True).values("pk")
    )


def _count_unattributed(entries: list[UsageEntry]) -> None:
    counts = Counter((_hour(e.created_at), e.error_code) for e in entries)
    if not counts:
        return
    table = UnattributedCalls._meta.db_table
    sql = (
        f"INSERT INTO {table} (hour, error_code, count) VALUES (%s, %s, %s) "
        f"ON CONFLICT (hour, error_code) DO UPDATE SET count = {table}.count + excluded.count"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, [[_adapt(h), code, n] for (h, code), n in counts.items()])


def _adapt(moment: datetime) -> Any:
    """Raw SQL needs the same datetime form the ORM stores (SQLite keeps text)."""
    return connection.ops.adapt_datetimefield_value(moment)


def usage_defer(entry: UsageEntry) -> None:
    """Log a call after its answer (core/write_behind.py says how it travels)."""
    write_behind.defer("usage", entry.payload())


def usage_write_records(payloads: list[dict[str, Any]]) -> None:
    """The write-behind sink of the "usage" channel."""
    usage_write([UsageEntry.from_payload(p) for p in payloads])


def usage_check_from_stream(payloads: list[dict[str, Any]]) -> None:
    """ValueError (the batch is written in halves, down to the entry, which is dropped and
    counted) if an entry read from the stream names a key or client token of another
    project than its own, or a client token with another parent. The API takes a call's
    project from its token, so only an entry made by hand on the stream does; written, it
    was the named project's call, and its call log showed the other project's key, its
    name and hint, to every member there. A token not found is left to the foreign keys.
    Two small reads a batch, by primary key (none for a batch without such ids); a
    worker's own buffer holds only entries it made, and is not read for them."""
    key_ids = {p["api_key_id"] for p in payloads if p.get("api_key_id") is not None}
    token_ids = {p["client_token_id"] for p in payloads if p.get("client_token_id") is not None}
    keys = api_key_projects(key_ids)
    tokens = {
        pk: rest
        for pk, *rest in ClientToken.objects.filter(pk__in=token_ids)
        .order_by()
        .values_list("pk", "project_id", "api_key_id", "personal_token_id")
    }
    for p in payloads:
        key_id, token_id = p.get("api_key_id"), p.get("client_token_id")
        if key_id in keys and keys[key_id] != p.get("project_id"):
            raise ValueError("a call names a key of another project")
        if token_id in tokens and tokens[token_id] != [
            p.get("project_id"),
            key_id,
            p.get("personal_token_id"),
        ]:
            raise ValueError("a call names a client token of another project or parent")


def api_key_projects(key_ids: Collection[int]) -> dict[int, int]:
    """The project of each of the keys `key_ids` that is found, in one read by primary key
    (none for no ids): what the stream's checks compare an entry's project with."""
    return dict(ApiKey.objects.filter(pk__in=key_ids).order_by().values_list("pk", "project_id"))


def usage_drops_record(channel: str, reason: str, count: int) -> None:
    """Keep the count of records the write-behind had to drop, per hour, for the overview."""
    table = UsageDrop._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (hour, channel, reason, count) VALUES (%s, %s, %s, %s) "
            f"ON CONFLICT (hour, channel, reason) DO UPDATE SET count = {table}.count + "
            "excluded.count",
            [_adapt(_hour(timezone.now())), channel, reason[:40], count],
        )
