"""Finding suspicious use of keys and tokens in the usage log, off the request path.

`detect()` reads the log from where it stopped last time (DetectionCursor), in id order
and in batches, and raises or adds to Flags:

- ended_token_used (high): a revoked or expired key, or an ended client token, is tried.
- blocked_network (high): a key's network allowlist refused calls (403 ip_not_allowed).
- auth_failure_burst (high): AUTH_BURST_THRESHOLD (20) or more auth/permission failures
  for one key within AUTH_BURST_WINDOW (10 minutes), not counting its suspension's or
  allowlist's own refusals, which have their own answer.
- new_network (medium): a key succeeds from a /24 (IPv4) or /48 (IPv6) it has never used,
  after its first day of use. Calls through client tokens are left out: browsers come
  from everywhere by design. One open alert per key counts and lists its new networks;
  it becomes high at NEW_NETWORKS_HIGH (5) of them.
- new_agent (medium): a key succeeds with an agent it has never called, after the same
  learning period as new networks (and off with them). One open alert per key lists them.
- volume_spike (medium): a key's calls in an hour reach SPIKE_FACTOR times its trailing
  7-day hourly average, and that many times its average at the same hour of the day (a
  nightly job is no spike), and at least SPIKE_MIN_CALLS, once it has a day of history.
  One open alert per key counts the hours over its usual.
- client_token_many_ips (medium): one client token used from CLIENT_TOKEN_MAX_IPS or more
  addresses.
- signs_together (high): two of new_network, new_agent and volume_spike on one key within
  TOGETHER_WITHIN (an hour) of each other, none of them high: each alone may be ordinary,
  together they are a strong sign of a leak. One open alert per key names the kinds; the
  signs stay medium.
- unused_key (low): an active key unused for UNUSED_AFTER; suggest revoking it.

A personal access token used from a network it never used, after its first day, raises
no flag (a PAT is its person's, not a project's): its person gets a security notice
(alerts/token_networks.py), at most one per token per hour.

Calls of a deleted project (accounts.services.project_delete: its keys revoked, but
still tried) raise nothing: nobody can see its alerts any more.

The numbers are the defaults: a project's owners may set their own, or turn a kind that
depends on them off (AlertRules, alerts/rules.py). Each batch reads the rules of all the
projects in it with one query.

A new high-severity flag emails the project's owners (and members who asked for these
emails; notifications/), one email each, at most once per key per hour.
run_scheduler runs it every minute: `python manage.py detect_suspicious_activity`.

Every row is read exactly once: usage rows get their ids in commit order (usage/writer.py
serialises its batches), so nothing can commit behind the cursor. Each read is bounded by
time too (`unread_rows`), so it touches only the recent days' partitions; a batch written
late is noted by the writer and read however far back it goes. One bad row or project
never stops the others: each check and each flag is isolated (a savepoint), a failure is
logged and counted, and the run goes on, as it does past a statement that runs into the
statement or lock timeout (core/db_errors.py); only the database itself going away stops
it, with the cursor where it was. Emails go out from what is stored (high-severity flags not
yet emailed), so a run that fails after saving a flag does not lose its email.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Max, Min, Q, QuerySet, Sum, TextField
from django.db.models.functions import Cast
from django.urls import reverse
from django.utils import timezone

from accounts.models import Project
from alerts.learnt import learnt_before
from alerts.links import evidence_note, evidence_url
from alerts.models import AlertRules, DetectionCursor, Flag, KeyAgent, KeyNetwork
from alerts.rules import (
    AUTH_BURST_THRESHOLD,
    AUTH_BURST_WINDOW,
    CLIENT_TOKEN_MAX_IPS,
    DEFAULTS,
    NEW_NETWORK_GRACE,
    SPIKE_FACTOR,
    SPIKE_MIN_CALLS,
    TUNABLES,
    UNUSED_AFTER,
    Thresholds,
)
from alerts.token_networks import token_network_notices, token_networks_learn
from apikeys.models import ApiKey, ClientToken, TokenStatus
from core.db_errors import run_must_stop
from core.mail import one_line
from core.networks import network_around
from notifications.recipients import MailRun, alert_email_recipients, send_to_each
from usage.models import Outcome, UsageHour, UsageRecord
from usage.writer import usage_late_forget, usage_late_span

logger = logging.getLogger(__name__)

__all__ = [
    "AUTH_BURST_THRESHOLD",
    "AUTH_BURST_WINDOW",
    "CLIENT_TOKEN_MAX_IPS",
    "NEW_NETWORK_GRACE",
    "SPIKE_FACTOR",
    "SPIKE_MIN_CALLS",
    "UNUSED_AFTER",
    "DetectionResult",
    "detect",
    "email_pending_flags",
]

BATCH_SIZE = 10_000
# How far before its last read (and after now) the detector looks for rows committed
# since; a late batch (usage/writer.py LATE_AFTER, 5 minutes) is noted and read wherever
# in time its calls are.
READ_MARGIN = timedelta(hours=1)
SPIKE_BASELINE = timedelta(days=7)
SPIKE_MIN_HISTORY = timedelta(days=1)
# The hours an open spike alert keeps (its count of hours goes on past them).
SPIKE_HOURS_LISTED = 168
EMAIL_EVERY = timedelta(hours=1)
# A flag not emailed within this long (no owner could be reached) is not emailed late.
EMAIL_WITHIN = timedelta(days=1)

# The error code of a call refused because its key is suspended (api/errors.py).
SUSPENDED = "suspended_api_key"
# Refused by the key's own network allowlist: its own alert, not an auth burst's.
IP_NOT_ALLOWED = "ip_not_allowed"

FIELDS = (
    "id",
    "created_at",
    "project_id",
    "api_key_id",
    "client_token_id",
    "personal_token_id",
    "outcome",
    "status",
    "error_code",
    "ip",
    "agent",
)


@dataclass
class DetectionResult:
    """What one detect() run did: the counts detect_suspicious_activity prints, and the flags
    it raised."""

    rows: int = 0
    flags_raised: int = 0
    flags_updated: int = 0
    emails: int = 0
    # Security notices of PATs used from new networks (alerts/token_networks.py).
    notices: int = 0
    # Checks, flags or emails that failed on their own data: logged, skipped, counted.
    failures: int = 0
    raised: list[Flag] = field(default_factory=list)


# The /24 (IPv4) or /48 (IPv6) that an address belongs to.
network_of = network_around


def detect(*, now: datetime | None = None, batch_size: int = BATCH_SIZE) -> DetectionResult:
    """Read the log past the cursor, raise flags, email owners. Safe to run again, and
    to run twice at once: the cursor moves only with the flags it produced, in one
    transaction per batch that locks the cursor's row."""
    now = now or timezone.now()
    result = DetectionResult()
    while True:
        with transaction.atomic():
            cursor, _ = DetectionCursor.objects.select_for_update().get_or_create(name="usage")
            rows = list(unread_rows(cursor).order_by("id").values(*FIELDS)[:batch_size])
            if not rows:
                break
            _process(rows, now, result)
            cursor.last_id = rows[-1]["id"]
            usage_late_forget(up_to_id=cursor.last_id)
            cursor.updated_at = now
            cursor.save(update_fields=["last_id", "updated_at"])
            result.rows += len(rows)
        if len(rows) < batch_size:
            break
    _isolated("unused keys", lambda: _unused_keys(now, result), result)
    email_pending_flags(now, result)
    _notify_token_networks(now, result)
    return result


def _notify_token_networks(now: datetime, result: DetectionResult) -> None:
    """Tell people of their PATs' new networks, each PAT in isolation."""
    sent, failed = token_network_notices(now, lambda what, run: _isolated(what, run, result))
    result.notices += sent
    result.failures += failed


def unread_rows(cursor: DetectionCursor) -> QuerySet[UsageRecord]:
    """The rows past the cursor, bounded in time as well as by id so that PostgreSQL reads
    only the partitions that can hold them, not every day of the log.

    A row past the cursor committed after the cursor's last read (at `updated_at`), and the
    writer notes every batch holding a call more than LATE_AFTER from its commit's time.
    So a row was made from `updated_at - READ_MARGIN` to `now + READ_MARGIN` (the margin
    leaves room for clocks that disagree), or lies in a noted batch. A new cursor reads
    the whole log."""
    rows = UsageRecord.objects.filter(id__gt=cursor.last_id)
    if not cursor.last_id:
        return rows
    since = cursor.updated_at - READ_MARGIN
    until = max(timezone.now(), cursor.updated_at) + READ_MARGIN
    late = usage_late_span(after_id=cursor.last_id)
    if late is not None:
        since, until = min(since, late[0]), max(until, late[1])
    return rows.filter(created_at__gte=since, created_at__lte=until)


def _process(rows: list[dict[str, Any]], now: datetime, result: DetectionResult) -> None:
    # A PAT's calls are its person's, whatever project they named (or none, or a deleted
    # one); an unreadable row is skipped here and counted below, or was never a project's.
    personal = [r for r in rows if r["personal_token_id"] and _readable(r)]
    _isolated("PAT networks", partial(token_networks_learn, personal), result)
    # A call that reached no project (no token, or a personal access token refused before
    # its X-Project was read) belongs to no project's alerts.
    rows = [r for r in rows if r["project_id"] is not None]
    # A deleted project's keys, all revoked, may still be tried; nobody can see its alerts
    # any more, so none is raised (nor emailed, nor sent to a webhook) for them.
    deleted = set(
        Project.objects.deleted()
        .filter(pk__in={r["project_id"] for r in rows})
        .values_list("pk", flat=True)
    )
    rows = [r for r in rows if r["project_id"] not in deleted]
    unreadable = [r["id"] for r in rows if not _readable(r)]
    if unreadable:
        # Not what our writer writes (SQLite keeps any text as an address; a stream entry
        # can be forged). Checked here, a row like that would undo a whole check, for
        # every project in the batch, and the cursor would move on past what it lost.
        logger.warning("detector: skipped %d unreadable rows: %s", len(unreadable), unreadable)
        result.failures += len(unreadable)
        skipped = set(unreadable)
        rows = [r for r in rows if r["id"] not in skipped]
    rules = _rules_of({r["project_id"] for r in rows})
    checks = {
        "ended tokens": _ended_tokens,
        "blocked networks": _blocked_networks,
        "auth bursts": _auth_bursts,
        "new networks": _new_networks,
        "new agents": _new_agents,
        "volume spikes": _volume_spikes,
        "client token addresses": _client_token_ips,
    }
    for what, check in checks.items():
        _isolated(what, partial(check, rows, now, result, rules), result)


# Times the checks can reach a week either side of (a spike's baseline, an hour's end).
EARLIEST_READABLE = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_READABLE = datetime(9000, 1, 1, tzinfo=UTC)


def _readable(row: dict[str, Any]) -> bool:
    """The row's address (if any) is an address and its time one the checks can use."""
    if not EARLIEST_READABLE <= row["created_at"] < LATEST_READABLE:
        return False
    if row["ip"]:
        try:
            network_around(row["ip"])
        except ValueError:
            return False
    return True


type Rules = dict[int, Thresholds]


def _rules_of(project_ids: set[int]) -> Rules:
    """The thresholds of every project in a batch, in one query; a project without its own
    rules gets the defaults."""
    rules: Rules = dict.fromkeys(project_ids, DEFAULTS)
    numbers = [t.name for t in TUNABLES]
    rows = AlertRules.objects.filter(project_id__in=project_ids).values(
        "project_id", *numbers, off_text=_OFF_AS_TEXT
    )
    for row in rows:
        try:
            values = {name: row[name] for name in numbers}
            rules[row["project_id"]] = Thresholds.of(
                values, _kinds_off(row["project_id"], row["off_text"])
            )
        except Exception:  # one project's odd row: its defaults, never everyone's run
            logger.warning("alert rules of project %s unreadable; defaults used", row["project_id"])
    return rules


# The kinds a project turned off, read as text and parsed here: read as JSON by the query,
# a row that Python cannot read back (a number past int()'s 4,300 digits, put there by
# hand or by a restore) raised while the batch's rules were read, outside any project's
# isolation; the batch failed whole, the cursor stayed, and every run met it again.
_OFF_AS_TEXT = Cast("off", output_field=TextField())


def _kinds_off(project_id: int, text: str | None) -> list[object]:
    """The kinds turned off, from a rules row's `off` read with _OFF_AS_TEXT; none if it
    is unreadable."""
    try:
        off = json.loads(text or "[]")
    except (ValueError, RecursionError):
        logger.warning("alert rules of project %s: kinds turned off unreadable", project_id)
        return []
    return off if isinstance(off, list) else []


def _isolated[T](what: str, run: Callable[[], T], result: DetectionResult) -> T | None:
    """Run `run` in a savepoint. If it fails on its data, or runs into the statement or
    lock timeout (its query too slow, its row held by another transaction), undo only it,
    log, count, go on; if the database itself is gone, or cannot run the SQL at all
    (core.db_errors.run_must_stop), stop the run (the next one retries from the cursor).
    A timeout stopped the run once: the next run read the same batch, met the same
    timeout, and detection stopped for every project."""
    try:
        with transaction.atomic():
            return run()
    except Exception as error:
        if run_must_stop(error):
            raise
        logger.exception("detector: %s failed; the rest of the run went on", what)
        result.failures += 1
        return None


# -- Raising flags --------------------------------------------------------------------------


SUMMARY_LENGTH = 300  # Flag.summary's max_length

# Makes a flag's summary and evidence from its open flag's evidence ({} for a new one).
type Merge = Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]


def _raise(
    result: DetectionResult,
    *,
    project_id: int,
    kind: str,
    severity: str,
    subject: str,
    summary: str,
    evidence: dict[str, Any],
    seen_from: datetime,
    seen_to: datetime,
    api_key_id: int | None = None,
    client_token_id: int | None = None,
    occurrences: int = 1,
    merge: Merge | None = None,
) -> Flag | None:
    """Add to the open flag for this finding, or open one. In a savepoint of its own: a
    flag that cannot be stored is logged and skipped, and the other flags still are.
    `merge`, where given, makes the summary and evidence from the open flag's evidence
    (a finding that accumulates, like a key's new networks); otherwise the newest
    summary replaces it and the evidence is updated."""
    dedupe_key = f"{project_id}:{kind}:{api_key_id or '-'}:{client_token_id or '-'}:{subject}"
    if merge is not None:
        summary, evidence = merge({})
    summary = summary[:SUMMARY_LENGTH]

    def add_to_open() -> Flag | None:
        flag = Flag.objects.select_for_update().filter(dedupe_key=dedupe_key).open().first()
        if flag is None:
            return None
        flag.occurrences = F("occurrences") + occurrences
        flag.last_seen = max(flag.last_seen, seen_to)
        if merge is not None:
            merged_summary, flag.evidence = merge(flag.evidence)
            flag.summary = merged_summary[:SUMMARY_LENGTH]
        else:
            flag.summary = summary
            flag.evidence = {**flag.evidence, **evidence}
        flag.save(update_fields=["occurrences", "last_seen", "summary", "evidence"])
        flag.refresh_from_db(fields=["occurrences"])
        result.flags_updated += 1
        return flag

    def open_new() -> Flag:
        flag = Flag.objects.create(
            project_id=project_id,
            api_key_id=api_key_id,
            client_token_id=client_token_id,
            kind=kind,
            severity=severity,
            dedupe_key=dedupe_key,
            summary=summary,
            evidence=evidence,
            occurrences=occurrences,
            first_seen=seen_from,
            last_seen=seen_to,
        )
        result.flags_raised += 1
        result.raised.append(flag)
        return flag

    def store() -> Flag:
        flag = add_to_open()
        if flag is not None:
            return flag
        try:
            with transaction.atomic():
                return open_new()
        except IntegrityError:
            # Another detector run opened it just now: add to that one, once. If it is
            # gone again (acknowledged in between), this fails and is logged below.
            flag = add_to_open()
            if flag is None:
                raise
            return flag

    stored: Flag | None = _isolated(f"flag {dedupe_key}", store, result)
    return stored


def _span(rows: list[dict[str, Any]]) -> tuple[datetime, datetime]:
    times = [r["created_at"] for r in rows]
    return min(times), max(times)


def _ips(rows: list[dict[str, Any]], most: int = 10) -> list[str]:
    counted: dict[str, int] = defaultdict(int)
    for r in rows:
        if r["ip"]:
            counted[r["ip"]] += 1
    return [ip for ip, _ in sorted(counted.items(), key=lambda kv: -kv[1])[:most]]


# -- The checks ------------------------------------------------------------------------------


def _ended_tokens(
    rows: list[dict[str, Any]], now: datetime, result: DetectionResult, rules: Rules
) -> None:
    by_token: dict[tuple[int, int | None, int | None], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        # A personal access token's ended use is its person's matter, not a project's.
        if r["outcome"] == Outcome.REVOKED_KEY and (r["api_key_id"] or r["client_token_id"]):
            # A client token's refusal is its own finding, even when its key is the cause;
            # it names the key that minted it (none for a PAT's), whose log holds its calls
            # and whose suspend, roll and revoke the alert offers.
            token = (r["project_id"], r["api_key_id"], r["client_token_id"])
            by_token[token].append(r)
    names = _names(by_token)
    keys = ApiKey.objects.only(*_ROLLED_KEY_READ).in_bulk(
        {k for _, k, c in by_token if k and not c}
    )
    for (project_id, key_id, ct_id), attempts in by_token.items():
        first, last = _span(attempts)
        what = names.get((None, ct_id) if ct_id else (key_id, None), "A token")
        ips = _ips(attempts)
        from_where = f"(from {', '.join(ips[:3]) or 'unknown addresses'})"
        summary = f"{what} no longer works but is still being tried {from_where}."
        key = keys.get(key_id) if key_id and not ct_id else None
        if key is not None and key.rolled_at:
            summary = _old_secret_tried(key, last, from_where) or summary
        _raise(
            result,
            project_id=project_id,
            api_key_id=key_id,
            client_token_id=ct_id,
            kind=Flag.Kind.ENDED_TOKEN_USED,
            severity=Flag.Severity.HIGH,
            subject="",
            summary=summary,
            evidence={"ips": ips, "outcome": Outcome.REVOKED_KEY, "since": first.isoformat()},
            seen_from=first,
            seen_to=last,
            occurrences=len(attempts),
        )


# What _old_secret_tried reads of a key, and no more: a column it never looks at (the
# key's agent scopes, its allowed networks) holding JSON Python cannot read back (put there
# by hand, a restore) failed the ended-token check for every project in the batch.
_ROLLED_KEY_READ = (
    "name",
    "hint",
    "previous_hint",
    "rolled_at",
    "revoked_at",
    "expires_at",
    "suspended_at",
)


def _old_secret_tried(key: ApiKey, last: datetime, from_where: str) -> str | None:
    """What to say of a rolled key refused while it works (neither revoked nor expired at
    the last attempt): the secret tried is one it replaced. Naming the key by its current
    hint would say the working secret stopped. None if the key itself had ended."""
    if key.status_at(last) in (TokenStatus.REVOKED, TokenStatus.EXPIRED):
        return None
    return (
        f"A secret that key “{key.name}” replaced when rolled (the last: {key.previous_hint}) "
        f"is still being tried {from_where}; its current secret ({key.hint}) still works."
    )


def _blocked_networks(
    rows: list[dict[str, Any]], now: datetime, result: DetectionResult, rules: Rules
) -> None:
    """Calls a key's network allowlist refused: the key's secret is held by someone
    outside its networks (or the list misses one of the project's own)."""
    by_key: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["error_code"] == IP_NOT_ALLOWED and r["api_key_id"] and not r["client_token_id"]:
            by_key[(r["project_id"], r["api_key_id"])].append(r)
    names = _names({(p, k, None) for p, k in by_key})
    for (project_id, key_id), calls in by_key.items():
        first, last = _span(calls)
        ips = _ips(calls)
        _raise(
            result,
            project_id=project_id,
            api_key_id=key_id,
            kind=Flag.Kind.BLOCKED_NETWORK,
            severity=Flag.Severity.HIGH,
            subject="",
            summary=f"{names.get((key_id, None), 'A key')} was used from outside its allowed "
            f"networks and refused (from {', '.join(ips[:3]) or 'unknown addresses'}).",
            evidence={"ips": ips, "error_code": IP_NOT_ALLOWED, "since": first.isoformat()},
            seen_from=first,
            seen_to=last,
            occurrences=len(calls),
        )


def _names(tokens: Any) -> dict[tuple[int | None, int | None], str]:
    key_ids = {k for _, k, c in tokens if k}
    ct_ids = {c for _, k, c in tokens if c}
    names: dict[tuple[int | None, int | None], str] = {}
    for key in ApiKey.objects.filter(pk__in=key_ids).only("name", "hint"):
        names[(key.pk, None)] = f"Key “{key.name}” ({key.hint})"
    for ct in ClientToken.objects.filter(pk__in=ct_ids).only("public_id"):
        names[(None, ct.pk)] = f"Client token {ct.public_id}"
    return names


def _auth_bursts(
    rows: list[dict[str, Any]], now: datetime, result: DetectionResult, rules: Rules
) -> None:
    """Counted in the log itself over the window ending at each key's latest failure, so a
    burst split across batches is still seen whole."""
    latest: dict[tuple[int, int], datetime] = {}
    for r in rows:
        # A suspended key refused is the project's own doing, not someone probing.
        if r["error_code"] in (SUSPENDED, IP_NOT_ALLOWED):
            continue
        if (
            r["outcome"] == Outcome.AUTH_FAILURE
            and r["api_key_id"]
            and rules[r["project_id"]].on(Flag.Kind.AUTH_FAILURE_BURST)
        ):
            token = (r["project_id"], r["api_key_id"])
            latest[token] = max(latest.get(token, r["created_at"]), r["created_at"])
    for (project_id, key_id), until in latest.items():
        burst = partial(_auth_burst, project_id, key_id, until, rules[project_id], result)
        _isolated(f"auth bursts of key {key_id}", burst, result)


def _auth_burst(
    project_id: int, key_id: int, until: datetime, rules: Thresholds, result: DetectionResult
) -> None:
    window, threshold = rules.burst_window, rules.burst_failures
    since = until - window
    failures = UsageRecord.objects.filter(
        api_key_id=key_id,
        created_at__gt=since,
        created_at__lte=until,
        outcome=Outcome.AUTH_FAILURE,
    ).exclude(error_code__in=(SUSPENDED, IP_NOT_ALLOWED))
    span = failures.aggregate(n=Count("id"), first=Min("created_at"), last=Max("created_at"))
    count = span["n"]
    if count < threshold:
        return
    ips = list(
        failures.values("ip")
        .annotate(n=Count("id"))
        .order_by("-n")
        .values_list("ip", flat=True)[:10]
    )
    name = _names({(project_id, key_id, None)}).get((key_id, None), "A key")
    _raise(
        result,
        project_id=project_id,
        api_key_id=key_id,
        kind=Flag.Kind.AUTH_FAILURE_BURST,
        severity=Flag.Severity.HIGH,
        subject="",
        summary=f"{name} was refused {count} times in {_minutes(window)} minutes "
        "for missing permissions or access.",
        evidence={
            "count": count,
            "ips": [ip for ip in ips if ip],
            "outcome": Outcome.AUTH_FAILURE,
            "since": since.isoformat(),
            "until": until.isoformat(),
        },
        # The first and the last refused call themselves, not the window's edges.
        seen_from=span["first"],
        seen_to=span["last"],
    )


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)


def _firsts(
    direct: list[dict[str, Any]],
    value: Callable[[dict[str, Any]], str],
    known: dict[int, set[str]],
    first_uses: dict[int, datetime],
    rules: Rules,
) -> tuple[list[tuple[int, str, datetime]], dict[tuple[int, int], dict[str, dict[str, Any]]]]:
    """What each key did for the first time in these calls (a network, an agent: `value`
    of a call), in the order they came: each (key, value, first seen), to be learnt; and,
    per (project, key), each new value's first call past the key's learning period (its
    first use and the new-network grace), to be told. `known` and `first_uses` are the
    keys' so far, and grow. Values are learnt while the kind is off, so turning it on
    flags only what is new from then on."""
    learnt: list[tuple[int, str, datetime]] = []
    findings: dict[tuple[int, int], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in direct:
        key_id, when, seen = r["api_key_id"], r["created_at"], value(r)
        if seen in known[key_id]:
            continue
        first_use = first_uses.get(key_id, when)
        first_uses[key_id] = min(first_use, when)
        known[key_id].add(seen)
        learnt.append((key_id, seen, when))
        project_rules = rules[r["project_id"]]
        if project_rules.on(Flag.Kind.NEW_NETWORK) and (
            when - first_use > project_rules.new_network_grace
        ):
            findings[(r["project_id"], key_id)][seen] = r
    return learnt, findings


def _new_networks(
    rows: list[dict[str, Any]], now: datetime, result: DetectionResult, rules: Rules
) -> None:
    direct = [
        r for r in rows
        if r["outcome"] == Outcome.OK and r["api_key_id"] and r["ip"] and not r["client_token_id"]
    ]  # fmt: skip
    if not direct:
        return
    known, first_uses = learnt_before(
        KeyNetwork,
        owner="api_key_id",
        value="network",
        owner_ids={r["api_key_id"] for r in direct},
        values={network_of(r["ip"]) for r in direct},
    )
    learnt, findings = _firsts(direct, lambda r: network_of(r["ip"]), known, first_uses, rules)
    KeyNetwork.objects.bulk_create(
        [KeyNetwork(api_key_id=k, network=n, first_seen=at) for k, n, at in learnt],
        ignore_conflicts=True,
    )
    names = _names({(p, k, None) for p, k in findings})
    for (project_id, key_id), firsts in findings.items():
        first, last = _span(list(firsts.values()))
        name = names.get((key_id, None), "A key")
        ips = [call["ip"] for call in firsts.values()]
        # One alert per key while it is open, however many networks: a leaked key used
        # from hundreds of addresses is one incident, not hundreds of alerts.
        flag = _raise(
            result,
            project_id=project_id,
            api_key_id=key_id,
            kind=Flag.Kind.NEW_NETWORK,
            severity=Flag.Severity.MEDIUM,
            subject="",
            summary="",
            evidence={},
            seen_from=first,
            seen_to=last,
            occurrences=len(firsts),
            merge=partial(_new_networks_merge, name, list(firsts), ips, first),
        )
        if flag is not None:
            escalate = partial(_new_networks_escalate, flag, now)
            _isolated(f"severity of flag {flag.pk}", escalate, result)
            _signs_together(flag, result)


def _new_networks_escalate(flag: Flag, now: datetime) -> None:
    """One new network may be a new server; a key taken up in one network after another
    is likely leaked: its alert becomes high, so it is emailed (and sent to webhooks that
    take only high alerts). Raised as high now (created_at, from which both count their
    day): a medium alert left open for days was past that day when it became high, and
    neither the email nor a high-only webhook ever came."""
    if flag.severity == Flag.Severity.MEDIUM and flag.evidence["count"] >= NEW_NETWORKS_HIGH:
        Flag.objects.filter(pk=flag.pk).update(severity=Flag.Severity.HIGH, created_at=now)


NETWORKS_LISTED = 20
# A key's open new-network alert becomes high (emailed) at this many new networks.
NEW_NETWORKS_HIGH = 5


def _new_networks_merge(
    name: str, networks: list[str], ips: list[str], first: datetime, old: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """A key's open new-network alert with `networks` added: the first network and its
    address stay first (the alert's link and its "is ours" are about them), the count
    grows, and the first NETWORKS_LISTED networks are listed."""
    listed = list(old.get("networks") or ([old["network"]] if old.get("network") else []))
    count = int(old.get("count", len(listed))) + len(networks)
    listed = [*listed, *[n for n in networks if n not in listed]][:NETWORKS_LISTED]
    evidence = {
        "network": listed[0],
        "networks": listed,
        "count": count,
        "ips": [*old.get("ips", []), *ips][:10],
        "since": old.get("since", first.isoformat()),
    }
    if count == 1:
        summary = (
            f"{name} was used from {listed[0]} ({evidence['ips'][0]}), a network it had "
            "not used before."
        )
    else:
        more = "…" if count > 3 else ""
        leaked = " It may have leaked." if count >= NEW_NETWORKS_HIGH else ""
        summary = (
            f"{name} was used from {count} networks it had not used before "
            f"({', '.join(listed[:3])}{more}).{leaked}"
        )
    return summary, evidence


def _new_agents(
    rows: list[dict[str, Any]], now: datetime, result: DetectionResult, rules: Rules
) -> None:
    """A key succeeding with an agent it has not called before, after its learning period
    (the new-network one: both learn what the key's own servers do, and both are off
    together). A leaked key is often used for what its owner never does."""
    direct = [
        r for r in rows
        if r["outcome"] == Outcome.OK and r["api_key_id"] and r["agent"]
        and not r["client_token_id"]
    ]  # fmt: skip
    if not direct:
        return
    known, first_uses = learnt_before(
        KeyAgent,
        owner="api_key_id",
        value="agent",
        owner_ids={r["api_key_id"] for r in direct},
        values={str(r["agent"]) for r in direct},
    )
    learnt, findings = _firsts(direct, lambda r: str(r["agent"]), known, first_uses, rules)
    KeyAgent.objects.bulk_create(
        [KeyAgent(api_key_id=k, agent=a, first_seen=at) for k, a, at in learnt],
        ignore_conflicts=True,
    )
    names = _names({(p, k, None) for p, k in findings})
    for (project_id, key_id), firsts in findings.items():
        first, last = _span(list(firsts.values()))
        flag = _raise(
            result,
            project_id=project_id,
            api_key_id=key_id,
            kind=Flag.Kind.NEW_AGENT,
            severity=Flag.Severity.MEDIUM,
            subject="",
            summary="",
            evidence={},
            seen_from=first,
            seen_to=last,
            occurrences=len(firsts),
            merge=partial(
                _new_agents_merge, names.get((key_id, None), "A key"), list(firsts), first
            ),
        )
        if flag is not None:
            _signs_together(flag, result)


AGENTS_LISTED = 20


def _new_agents_merge(
    name: str, agents: list[str], first: datetime, old: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """A key's open new-agent alert with `agents` added: counted, the first listed."""
    listed = list(old.get("agents", []))
    count = int(old.get("count", len(listed))) + len(agents)
    listed = [*listed, *[a for a in agents if a not in listed]][:AGENTS_LISTED]
    evidence = {"agents": listed, "count": count, "since": old.get("since", first.isoformat())}
    return _new_agents_summary(name, listed, count), evidence


AGENTS_NAMED = 3  # in the summary; the alert's evidence lists AGENTS_LISTED


def _new_agents_summary(name: str, listed: list[str], count: int) -> str:
    """What a new-agent alert says, within SUMMARY_LENGTH: the first few agents by name,
    fewer where long names would not fit, so the sentence and its advice are never cut."""
    what = "an agent" if count == 1 else f"{count} agents"
    for named in range(min(AGENTS_NAMED, len(listed)), 0, -1):
        more = "…" if count > named else ""
        summary = (
            f"{name} called {what} it had not called before: {', '.join(listed[:named])}"
            f"{more}. If nothing of yours does this, it may have leaked."
        )
        if len(summary) <= SUMMARY_LENGTH:
            return summary
    advice = "If nothing of yours does this, it may have leaked."
    return f"{name} called {what} it had not called before. {advice}"


def _volume_spikes(
    rows: list[dict[str, Any]], now: datetime, result: DetectionResult, rules: Rules
) -> None:
    hours: set[tuple[int, int, datetime]] = set()
    for r in rows:
        if r["api_key_id"] and rules[r["project_id"]].on(Flag.Kind.VOLUME_SPIKE):
            hour = r["created_at"].replace(minute=0, second=0, microsecond=0)
            hours.add((r["project_id"], r["api_key_id"], hour))
    for project_id, key_id, hour in hours:
        spike = partial(_volume_spike, project_id, key_id, hour, now, rules[project_id], result)
        _isolated(f"volume spike of key {key_id}", spike, result)


def _volume_spike(
    project_id: int,
    key_id: int,
    hour: datetime,
    now: datetime,
    rules: Thresholds,
    result: DetectionResult,
) -> None:
    history = UsageHour.objects.filter(
        api_key_id=key_id, hour__gte=hour - SPIKE_BASELINE, hour__lt=hour
    )
    stats = history.aggregate(total=Sum("requests"))
    first_hour = history.order_by("hour").values_list("hour", flat=True).first()
    if first_hour is None or hour - first_hour < SPIKE_MIN_HISTORY:
        return  # a new key has no baseline to spike above
    span_hours = max(1, int((hour - first_hour).total_seconds() // 3600))
    average = (stats["total"] or 0) / span_hours
    at_this_hour = _same_hour_average(key_id, hour, first_hour)
    # A nightly job's hour is busy every night: ordinary for that hour of the day, however
    # far above the key's average over all hours.
    baseline = max(average, at_this_hour)
    current = (
        UsageHour.objects.filter(api_key_id=key_id, hour=hour)
        .values_list("requests", flat=True)
        .first()
        or 0
    )
    if current < max(rules.spike_min_calls, rules.spike_factor * baseline):
        return
    calls = UsageRecord.objects.filter(
        api_key_id=key_id, created_at__gte=hour, created_at__lt=hour + timedelta(hours=1)
    ).aggregate(first=Min("created_at"), last=Max("created_at"))
    name = _names({(project_id, key_id, None)}).get((key_id, None), "A key")
    figures = (
        f"made {current} calls in the hour from {hour:%H:%M} UTC, "
        f"{current / baseline if baseline else current:.0f}× its usual {baseline:.1f} "
        f"({average:.1f} an hour on average, {at_this_hour:.1f} at this hour of the day)."
    )
    this_hour = {
        "count": current,
        "baseline_per_hour": round(average, 2),
        "baseline_this_hour": round(at_this_hour, 2),
        "since": hour.isoformat(),
        "until": (hour + timedelta(hours=1)).isoformat(),
    }
    # One alert per key while it is open: abuse that lasts hours is one incident.
    flag = _raise(
        result,
        project_id=project_id,
        api_key_id=key_id,
        kind=Flag.Kind.VOLUME_SPIKE,
        severity=Flag.Severity.MEDIUM,
        subject="",
        summary="",
        evidence={},
        seen_from=calls["first"] or hour,
        seen_to=calls["last"] or min(now, hour + timedelta(hours=1)),
        merge=partial(_volume_spike_merge, name, figures, this_hour),
    )
    if flag is not None:
        _signs_together(flag, result)


# Signs that a key's own use changed. Each alone may be ordinary (a new server, a new
# feature, a busy day): medium, on the page, emailed to nobody. Two kinds of them on one key
# within TOGETHER_WITHIN of each other are a strong sign of a leak: one high alert says so.
TOGETHER_KINDS: tuple[str, ...] = (
    Flag.Kind.NEW_NETWORK,
    Flag.Kind.NEW_AGENT,
    Flag.Kind.VOLUME_SPIKE,
)
TOGETHER_WITHIN = timedelta(hours=1)
TOGETHER_SAID: dict[str, str] = {
    Flag.Kind.NEW_NETWORK: "was used from a new network",
    Flag.Kind.NEW_AGENT: "called agents it had not called",
    Flag.Kind.VOLUME_SPIKE: "made calls far over its usual",
}


def _signs_together(flag: Flag, result: DetectionResult) -> None:
    """After `flag`, one of TOGETHER_KINDS, was raised or added to: if its key has another
    of those kinds open, seen within TOGETHER_WITHIN of it, raise (or add a kind to) the
    key's one open signs_together alert, high, so it is emailed and sent to webhooks that
    take only high alerts. The signs stay medium: each says what it is. Nothing is raised
    where one of them is high already (its people hear of that one), nor again while the
    open one names the same kinds (the leak going on is no news): one email per key."""
    if flag.api_key_id is None:
        return

    def check() -> None:
        # `flag` itself as stored: its severity may have changed since it was read (a new
        # network alert turned high by _new_networks_escalate).
        signs = list(
            Flag.objects.open()
            .filter(api_key_id=flag.api_key_id, kind__in=TOGETHER_KINDS)
            .filter(
                last_seen__gte=flag.first_seen - TOGETHER_WITHIN,
                first_seen__lte=flag.last_seen + TOGETHER_WITHIN,
            )
            .only("pk", "kind", "severity", "first_seen", "last_seen")
        )
        kinds = [kind for kind in TOGETHER_KINDS if any(sign.kind == kind for sign in signs)]
        if len(kinds) < 2 or any(sign.severity == Flag.Severity.HIGH for sign in signs):
            return
        said = (
            Flag.objects.open()
            .filter(api_key_id=flag.api_key_id, kind=Flag.Kind.SIGNS_TOGETHER)
            .values_list("evidence", flat=True)
            .first()
        )
        if said is not None and set(kinds) <= set(said.get("kinds", [])):
            return
        name = _names({(flag.project_id, flag.api_key_id, None)}).get(
            (flag.api_key_id, None), "A key"
        )
        lasts = [sign.last_seen for sign in signs]
        _raise(
            result,
            project_id=flag.project_id,
            api_key_id=flag.api_key_id,
            kind=Flag.Kind.SIGNS_TOGETHER,
            severity=Flag.Severity.HIGH,
            subject="",
            summary="",
            evidence={},
            seen_from=min(lasts),
            seen_to=max(lasts),
            merge=partial(_signs_together_merge, name, kinds, [sign.pk for sign in signs]),
        )

    _isolated(f"signs together of key {flag.api_key_id}", check, result)


def _signs_together_merge(
    name: str, kinds: list[str], alerts: list[int], old: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The key's open signs_together alert with `kinds` (and the alerts that showed them)
    added: which kinds, in TOGETHER_KINDS' order, and the ids of their alerts."""
    kinds = [kind for kind in TOGETHER_KINDS if kind in kinds or kind in old.get("kinds", [])]
    ids = sorted({*old.get("alerts", []), *alerts})[-10:]
    said = [TOGETHER_SAID[kind] for kind in kinds]
    what = f"{', '.join(said[:-1])} and {said[-1]}"
    tail = f" {what} within the hour: it may have leaked. If nothing of yours did this, revoke it."
    return f"{_name_within(name, SUMMARY_LENGTH - len(tail))}{tail}", {
        "kinds": kinds,
        "alerts": ids,
    }


def _volume_spike_merge(
    name: str, figures: str, this_hour: dict[str, Any], old: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """A key's open spike alert with one more hour over its usual (or the same hour, seen
    again with more calls): the latest hour's figures, since when, and how many hours."""
    hours = list(old.get("hour_list", []))
    count = int(old.get("hours", len(hours)))
    if this_hour["since"] not in hours:
        hours.append(this_hour["since"])
        count += 1
    evidence = {
        **this_hour,
        "since": old.get("since", this_hour["since"]),
        "peak": max(int(old.get("peak", 0)), this_hour["count"]),
        "hours": count,
        "hour_list": hours[-SPIKE_HOURS_LISTED:],
    }
    if count == 1:
        return _volume_spike_summary(name, figures), evidence
    since = datetime.fromisoformat(evidence["since"])
    hours_over = f"Over its usual in {count} hours since {since:%-d %b, %H:%M} UTC."
    return _volume_spike_summary(name, f"{figures} {hours_over}"), evidence


def _volume_spike_summary(name: str, figures: str) -> str:
    """What a volume-spike alert says, within SUMMARY_LENGTH: the key's name cut short
    where the whole would not fit, so the figures and since when are never cut."""
    return f"{_name_within(name, SUMMARY_LENGTH - len(figures) - 1)} {figures}"


def _name_within(name: str, most: int) -> str:
    """A key as _names writes it (Key “name” (hint)) in at most `most` characters where
    it can be: the name in its quotes cut short with "…", the hint kept (which key)."""
    if len(name) <= most:
        return name
    opening, closing = name.find("“") + 1, name.rfind("”")
    if opening == 0 or closing < opening:
        return f"{name[: max(1, most - 1)]}…"
    kept = max(1, closing - opening - (len(name) - most) - 1)
    return f"{name[:opening]}{name[opening : opening + kept]}…{name[closing:]}"


def _same_hour_average(key_id: int, hour: datetime, first_hour: datetime) -> float:
    """The key's calls in the same hour of the day, on average over the baseline's days
    (those since its first call)."""
    days = [
        hour - timedelta(days=d)
        for d in range(1, SPIKE_BASELINE.days + 1)
        if hour - timedelta(days=d) >= first_hour
    ]
    if not days:
        return 0.0
    total = UsageHour.objects.filter(api_key_id=key_id, hour__in=days).aggregate(
        total=Sum("requests")
    )["total"]
    return (total or 0) / len(days)


def _client_token_ips(
    rows: list[dict[str, Any]], now: datetime, result: DetectionResult, rules: Rules
) -> None:
    tokens = {
        (r["project_id"], r["client_token_id"])
        for r in rows
        if r["client_token_id"] and rules[r["project_id"]].on(Flag.Kind.CLIENT_TOKEN_MANY_IPS)
    }
    for project_id, ct_id in tokens:
        most = rules[project_id].client_token_max_ips
        many = partial(_client_token_many_ips, project_id, ct_id, most, result)
        _isolated(f"addresses of client token {ct_id}", many, result)


def _client_token_many_ips(project_id: int, ct_id: int, most: int, result: DetectionResult) -> None:
    ips = list(
        UsageRecord.objects.filter(client_token_id=ct_id, ip__isnull=False)
        .values_list("ip", flat=True)
        .distinct()[: most * 4]
    )
    if len(ips) < most:
        return
    span = UsageRecord.objects.filter(client_token_id=ct_id).aggregate(
        first=Min("created_at"), last=Max("created_at")
    )
    ct = ClientToken.objects.only("public_id", "api_key_id").get(pk=ct_id)
    _raise(
        result,
        project_id=project_id,
        api_key_id=ct.api_key_id,
        client_token_id=ct_id,
        kind=Flag.Kind.CLIENT_TOKEN_MANY_IPS,
        severity=Flag.Severity.MEDIUM,
        subject="",
        summary=f"Client token {ct.public_id} was used from {len(ips)}"
        f"{'+' if len(ips) >= most * 4 else ''} addresses; a token minted "
        "for one browser should see one or two.",
        evidence={"ips": ips[:10], "count": len(ips), "since": span["first"].isoformat()},
        seen_from=span["first"],
        seen_to=span["last"],
    )


def _unused_since(cutoff: datetime) -> Q:
    return Q(last_used_at__lt=cutoff) | Q(last_used_at__isnull=True, created_at__lt=cutoff)


def _unused_keys(now: datetime, result: DetectionResult) -> None:
    """Over every project's keys: the projects with rules of their own for it are grouped
    by their number of days, so the query has a term per distinct value, not per project."""
    # A row per project that saved rules: few, and read once a run (a JSON "contains"
    # is not there on SQLite, so the kinds turned off are read here).
    tuned = AlertRules.objects.values("project_id", "unused_days", off_text=_OFF_AS_TEXT)
    by_days: dict[timedelta, list[int]] = defaultdict(list)
    special: list[int] = []
    for row in tuned:
        turned_off = Flag.Kind.UNUSED_KEY in _kinds_off(row["project_id"], row["off_text"])
        if row["unused_days"] is None and not turned_off:
            continue
        special.append(row["project_id"])
        if not turned_off:
            days = row["unused_days"]
            by_days[timedelta(days=days) if days else UNUSED_AFTER].append(row["project_id"])
    unused = _unused_since(now - UNUSED_AFTER) & ~Q(project_id__in=special)
    for after, project_ids in by_days.items():
        unused |= _unused_since(now - after) & Q(project_id__in=project_ids)
    stale = ApiKey.objects.active().filter(
        unused,
        suspended_at__isnull=True,  # quiet because it is suspended: nothing to point out
    )
    cutoffs = {p: now - after for after, ps in by_days.items() for p in ps}
    # Flagged already for this quiet spell: a flag whose spell starts at (or after) the
    # key's last use. A key used again after its flag, then left unused again, is flagged
    # again.
    already = set(
        Flag.objects.filter(kind=Flag.Kind.UNUSED_KEY, api_key__in=stale)
        .filter(
            Q(api_key__last_used_at__isnull=True) | Q(first_seen__gte=F("api_key__last_used_at"))
        )
        .values_list("api_key_id", flat=True)
    )
    # Only what the check reads: a column it never looks at (the key's scopes, its allowed
    # networks) holding JSON Python cannot read back stopped the check for every project.
    checked = stale.exclude(pk__in=already).only(
        "project_id", "name", "hint", "created_at", "last_used_at"
    )
    for key in checked:
        # Each key on its own: one whose query runs out of time is not every project's loss.
        _isolated(f"unused key {key.pk}", partial(_unused_key, key, now, cutoffs, result), result)


def _unused_key(
    key: ApiKey, now: datetime, cutoffs: dict[int, datetime], result: DetectionResult
) -> None:
    # "Last used" is marked at most once a minute, and not while another transaction
    # holds the key's row (usage/writer.py): the log, while it still holds them, has the
    # key's own successes after the mark, or since its creation if it was never marked.
    later = UsageRecord.objects.filter(
        api_key_id=key.pk,
        client_token_id__isnull=True,
        outcome=Outcome.OK,
        created_at__gt=key.last_used_at or key.created_at,
    ).aggregate(last=Max("created_at"))["last"]
    if later is not None and later >= cutoffs.get(key.project_id, now - UNUSED_AFTER):
        return
    last_used = later or key.last_used_at
    since = last_used or key.created_at
    _raise(
        result,
        project_id=key.project_id,
        api_key_id=key.pk,
        kind=Flag.Kind.UNUSED_KEY,
        severity=Flag.Severity.LOW,
        subject="",
        summary=f"Key “{key.name}” ({key.hint}) has not been used since {since:%-d %b %Y}. "
        "If nothing needs it, revoke it: an unused key is only a risk.",
        evidence={"last_used": last_used.isoformat() if last_used else None},
        seen_from=since,
        seen_to=now,
    )


# -- Telling people --------------------------------------------------------------------------


def email_pending_flags(now: datetime, result: DetectionResult) -> None:
    """Email the owners (and members who asked) about every open high-severity flag not
    emailed yet (raised by this run or by one that failed before its emails), each in
    isolation: a project whose mail cannot be sent does not keep the others' from going.
    Their sends take MAIL_RUN_BUDGET_SECONDS at most (the rest wait for the next run),
    in turn from where the last run stopped (MailRun)."""
    pending = (
        Flag.objects.filter(
            severity=Flag.Severity.HIGH,
            emailed_at__isnull=True,
            acknowledged_at__isnull=True,
            created_at__gte=now - EMAIL_WITHIN,
        )
        .select_related("project")
        .order_by("id")
    )
    run = MailRun("alert-emails")
    for flag in run.in_turn(pending, place=_place):
        recipients = _isolated(
            f"claiming the email for flag {flag.pk}", partial(_claim_email, flag, now), result
        )
        if recipients and _email_owners(flag, recipients, now, result, run):
            result.emails += 1
    run.finish()


def _place(flag: Flag) -> tuple[int]:
    return (flag.pk,)


def _claim_email(flag: Flag, now: datetime) -> list[str]:
    """Claim the email about a new high-severity flag (emailed_at), so that two runs never
    both send it; whom to send it to (none: nothing to send now). One email per key (or
    client token) per hour at most, however many flags it raises: a flag raised within the
    hour of its key's last email is held back, unclaimed, and a run after that hour sends
    it if it is still open and unacknowledged (another kind of alert on a key already
    mailed about is news: it was dropped before).

    Who: the owners, less those who turned these emails off, and members who turned them
    on (notifications/), each in a message of their own."""
    recent = Flag.objects.filter(
        project_id=flag.project_id,
        api_key_id=flag.api_key_id,
        client_token_id=flag.client_token_id,
        emailed_at__gt=now - EMAIL_EVERY,
    ).exclude(pk=flag.pk)
    if recent.exists():
        return []  # held back until the hour since the key's last email is over
    claimed = Flag.objects.filter(pk=flag.pk, emailed_at__isnull=True).update(emailed_at=now)
    if not claimed:
        return []
    return alert_email_recipients(flag.project_id)


def _email_owners(
    flag: Flag,
    recipients: list[str],
    now: datetime,
    result: DetectionResult,
    run: MailRun,
) -> bool:
    """Send the claimed email, after the claim committed: a transaction open while a mail
    server answers (seconds per recipient) would hold the flag's row, and an owner
    acknowledging it would wait, past the lock timeout get an error. If it reaches nobody
    the claim is given back and the next run sends it; a process killed between the claim
    and the send loses that one email (the flag itself stays on the alerts page)."""
    project = flag.project
    dashboard = settings.DASHBOARD_URL.rstrip("/")
    # The alert itself, where its key can be suspended, rolled or revoked in one click.
    link = dashboard + reverse("alerts:flag_list", kwargs={"slug": project.slug})
    link += f"#flag-{flag.pk}"
    calls = evidence_url(flag)
    note = f" ({evidence_note(flag)})" if evidence_note(flag) else ""  # which of them
    calls_line = f"The calls behind it{note}: {dashboard}{calls}\n\n" if calls else ""
    preferences = dashboard + reverse("notifications:preferences")
    try:
        sent = send_to_each(
            recipients,
            lambda to: send_mail(
                # Names are the customer's text: one line, so no name can add a mail header.
                subject=one_line(f"[Reminix] {flag.get_kind_display()} in {project.name}"),
                message=(
                    # One line, as the subject: a name saved before names were one line
                    # would otherwise write a paragraph of its own into our email.
                    f"{one_line(flag.summary, limit=SUMMARY_LENGTH)}\n\n"
                    f"First seen {flag.first_seen:%-d %b %Y, %H:%M:%S} UTC.\n\n"
                    f"{calls_line}"
                    "Review it and acknowledge it in the dashboard, where you can also "
                    f"suspend, roll or revoke the key: {link}\n\n"
                    "If the key was leaked, revoke it there and create a new one.\n\n"
                    f"Choose which emails you get from each project: {preferences}\n"
                ),
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=to,
            ),
            run=run,
        )
    except Exception as error:
        if run_must_stop(error):
            raise
        Flag.objects.filter(pk=flag.pk, emailed_at=now).update(emailed_at=None)
        logger.exception("detector: email for flag %s not sent; the next run tries again", flag.pk)
        result.failures += 1
        return False
    return bool(sent)
