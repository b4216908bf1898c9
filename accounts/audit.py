"""The audit trail: writing it, and reading it for the audit pages and their CSV export.

Writes: call `audit_record` inside the transaction of the change being recorded. Sign-in
events are written from Django's auth signals (accounts/signals.py).

Reads: a project's page shows the events of that project; a user's page shows what the
user did and the sign-in attempts on their account. Both read one keyset page at a time,
newest first on (created_at, id), on the (project, created_at) or (actor, created_at)
index; never OFFSET, never COUNT.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from django.db.models import Q

from accounts.models import AuditEvent, AuditEventQuerySet, Project, User

# -- Writing --------------------------------------------------------------------------------


def audit_record(
    *,
    action: str,
    actor: User | None,
    project: Project | None = None,
    target: Any = None,
    target_label: str = "",
    ip: str | None = None,
    metadata: dict[str, Any] | None = None,
    actor_email: str = "",
) -> AuditEvent:
    """Append one event. `target` is any model instance; its type and id are kept as text
    so that the event outlives the thing it describes. `actor_email` names an actor that
    is not a user of ours (an attempted sign-in with an unknown email)."""
    label = target_label or (str(target) if target is not None else "")
    return AuditEvent.objects.create(
        action=action,
        actor=actor,
        actor_email=(actor.email if actor else actor_email)[:254],
        project=project,
        target_type=target._meta.model_name if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=label[:200],
        ip_address=ip or None,
        metadata=metadata or {},
    )


# -- What the actions are called ------------------------------------------------------------

type Scope = Literal["project", "user"]
type Tone = Literal["", "success", "warning", "danger"]


@dataclass(frozen=True, slots=True)
class ActionGroup:
    """Actions that a filter offers as one choice: those whose name starts with `prefix`."""

    key: str
    label: str
    prefix: str
    scopes: frozenset[str]


BOTH: frozenset[str] = frozenset({"project", "user"})
USER_ONLY: frozenset[str] = frozenset({"user"})

ACTION_GROUPS: tuple[ActionGroup, ...] = (
    # Sign-ins and the account itself belong to no project.
    ActionGroup("account", "Sign-ins and account", "user.", USER_ONLY),
    ActionGroup("project", "Project settings", "project.", BOTH),
    ActionGroup("members", "Members", "membership.", BOTH),
    ActionGroup("api_keys", "API keys", "api_key.", BOTH),
    ActionGroup("client_tokens", "Client tokens", "client_token.", BOTH),
    # Personal access tokens belong to a person, not to a project.
    ActionGroup("personal_tokens", "Personal access tokens", "personal_token.", USER_ONLY),
    ActionGroup("flags", "Alerts", "flag.", BOTH),
)
GROUPS_BY_KEY: dict[str, ActionGroup] = {group.key: group for group in ACTION_GROUPS}

# The label each action shows, and the colour of its badge.
ACTIONS: dict[str, tuple[str, Tone]] = {
    "user.signed_up": ("Signed up", "success"),
    "user.signed_in": ("Signed in", ""),
    "user.sign_in_failed": ("Sign-in failed", "warning"),
    "user.password_changed": ("Password changed", "warning"),
    "project.created": ("Project created", "success"),
    "project.renamed": ("Project renamed", ""),
    "project.origins_changed": ("Allowed origins changed", "warning"),
    "membership.added": ("Member added", "success"),
    "membership.removed": ("Member removed", "danger"),
    "api_key.created": ("API key created", "success"),
    "api_key.renamed": ("API key renamed", ""),
    "api_key.revoked": ("API key revoked", "danger"),
    "client_token.created": ("Client token created", ""),
    "client_token.revoked": ("Client token revoked", "warning"),
    "client_token.revoked_all_of_key": ("Client tokens of a key revoked", "danger"),
    "personal_token.created": ("Personal access token created", "success"),
    "personal_token.revoked": ("Personal access token revoked", "danger"),
    "flag.acknowledged": ("Alert acknowledged", ""),
}


def action_groups_for(scope: Scope) -> list[ActionGroup]:
    return [group for group in ACTION_GROUPS if scope in group.scopes]


def action_label(action: str) -> str:
    """The human name of `action`; an action added later reads "Api key rotated" until it
    gets a proper label above."""
    if action in ACTIONS:
        return ACTIONS[action][0]
    return action.replace(".", " ").replace("_", " ").capitalize()


def action_tone(event: AuditEvent) -> Tone:
    if event.action == "user.sign_in_failed" and event.metadata.get("locked_out"):
        return "danger"
    return ACTIONS.get(event.action, ("", ""))[1]


def actor_label(event: AuditEvent) -> str:
    """Who did it: a person's email, or the API key that minted a client token."""
    if event.actor_email:
        return event.actor_email
    minted_by = event.metadata.get("minted_by") if isinstance(event.metadata, dict) else None
    if minted_by:
        return f"API key {minted_by}"
    if isinstance(event.metadata, dict) and event.metadata.get("via") == "api":
        return "API"
    return ""


def _text(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_text(item) for item in value) if value else "none"
    if isinstance(value, dict):
        return json.dumps(value, separators=(", ", ": "), ensure_ascii=False)
    return str(value)


def event_details(event: AuditEvent) -> list[tuple[str, str]]:
    """The event's metadata as short (name, value) pairs; a change reads "from → to"."""
    metadata = event.metadata if isinstance(event.metadata, dict) else {"value": event.metadata}
    details: list[tuple[str, str]] = []
    skip = set()
    if "from" in metadata and "to" in metadata:
        details.append(("changed", f"{_text(metadata['from'])} → {_text(metadata['to'])}"))
        skip |= {"from", "to"}
    if not event.actor_email:
        skip.add("minted_by")  # shown as the actor instead
    for key, value in metadata.items():
        if key in skip:
            continue
        if key == "expires_at":
            details.append(("expires", _moment(value) if value else "never"))
        elif key == "projects" and not value:
            details.append(("projects", "all of the user's"))
        else:
            details.append((key.replace("_", " "), _text(value)))
    return details


def _moment(value: object) -> str:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An event as the audit pages show it."""

    event: AuditEvent
    label: str
    tone: Tone
    actor: str
    details: list[tuple[str, str]]

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEntry:
        return cls(
            event=event,
            label=action_label(event.action),
            tone=action_tone(event),
            actor=actor_label(event),
            details=event_details(event),
        )


# -- Reading --------------------------------------------------------------------------------

PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class AuditFilters:
    """What a page is narrowed to; empty fields do not narrow. Dates are whole UTC days,
    `until` included."""

    group: str = ""
    actor: str = ""
    ip: str = ""
    since: date | None = None
    until: date | None = None

    def apply(self, events: AuditEventQuerySet) -> AuditEventQuerySet:
        if self.group:
            events = events.filter(action__startswith=GROUPS_BY_KEY[self.group].prefix)
        if self.actor:
            events = events.filter(actor_email__icontains=self.actor)
        if self.ip:
            events = events.filter(ip_address=self.ip)
        if self.since is not None:
            events = events.filter(created_at__gte=_day_start(self.since))
        if self.until is not None:
            events = events.filter(created_at__lt=_day_start(self.until + timedelta(days=1)))
        return events


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


class StaleCursor(LookupError):
    """A pager link names an event that is not in this log."""


@dataclass(frozen=True, slots=True)
class AuditPage:
    """Up to a page of entries, newest first, and the ids the pages beside it start at."""

    entries: list[AuditEntry]
    newer: int | None  # newer events exist: they are at `?after=<newer>`
    older: int | None  # older events exist: they are at `?before=<older>`
    is_newest: bool  # nothing is newer than this page (as of this read)


def audit_page(
    *,
    scope: AuditEventQuerySet,
    filters: AuditFilters,
    before: int | None = None,
    after: int | None = None,
    size: int = PAGE_SIZE,
) -> AuditPage:
    """One page of the events in `scope` that match `filters`: the newest, those just older
    than event `before`, or those just newer than event `after`.

    A cursor is an event id; its (created_at, id) is looked up in `scope`, so a link that
    names another project's or user's event is a StaleCursor, and says nothing about it.
    """
    events = filters.apply(scope).select_related("project")
    cursor_id = before if before is not None else after
    if cursor_id is None:
        rows = list(events.order_by("-created_at", "-id")[: size + 1])
        older = rows[size - 1].pk if len(rows) > size else None
        return AuditPage(_entries(rows[:size]), newer=None, older=older, is_newest=True)

    anchor = scope.filter(pk=cursor_id).values_list("created_at", flat=True).first()
    if anchor is None:
        raise StaleCursor(cursor_id)

    if before is not None:
        older_rows = _older_than(events, anchor, cursor_id).order_by("-created_at", "-id")
        rows = list(older_rows[: size + 1])
        rows, more_older = rows[:size], len(rows) > size
        if not rows:
            return AuditPage([], newer=None, older=None, is_newest=False)
        more_newer = _newer_than(events, rows[0].created_at, rows[0].pk).exists()
    else:
        newer_rows = _newer_than(events, anchor, cursor_id).order_by("created_at", "id")
        rows = list(newer_rows[: size + 1])
        rows, more_newer = rows[:size][::-1], len(rows) > size
        if not rows:
            return audit_page(scope=scope, filters=filters, size=size)
        more_older = _older_than(events, rows[-1].created_at, rows[-1].pk).exists()
    return AuditPage(
        _entries(rows),
        newer=rows[0].pk if more_newer else None,
        older=rows[-1].pk if more_older else None,
        is_newest=not more_newer,
    )


def _entries(events: list[AuditEvent]) -> list[AuditEntry]:
    return [AuditEntry.of(event) for event in events]


def _older_than(events: AuditEventQuerySet, moment: datetime, pk: int) -> AuditEventQuerySet:
    # created_at <= moment is implied by the OR; said outright so the index range applies.
    return events.filter(created_at__lte=moment).filter(
        Q(created_at__lt=moment) | Q(created_at=moment, pk__lt=pk)
    )


def _newer_than(events: AuditEventQuerySet, moment: datetime, pk: int) -> AuditEventQuerySet:
    return events.filter(created_at__gte=moment).filter(
        Q(created_at__gt=moment) | Q(created_at=moment, pk__gt=pk)
    )


# -- CSV ------------------------------------------------------------------------------------

CSV_HEADER = [
    "time_utc",
    "project",
    "actor",
    "action",
    "action_label",
    "target_type",
    "target_id",
    "target_label",
    "ip_address",
    "details",
]
# A cell starting with one of these is a formula to a spreadsheet (OWASP "CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: str) -> str:
    """`value`, with a leading quote if a spreadsheet would read it as a formula. Labels,
    key names and attempted emails are typed by people, some of them hostile."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def audit_csv_rows(events: AuditEventQuerySet) -> Iterator[list[str]]:
    """The header, then one row per event, newest first, read from the database in chunks
    so that a long log never sits in memory whole."""
    yield CSV_HEADER
    ordered = events.select_related("project").order_by("-created_at", "-id")
    for event in ordered.iterator(chunk_size=2000):
        metadata = event.metadata if isinstance(event.metadata, dict) else {}
        row = [
            event.created_at.astimezone(UTC).isoformat(timespec="seconds"),
            event.project.slug if event.project else "",
            actor_label(event),
            event.action,
            action_label(event.action),
            event.target_type,
            event.target_id,
            event.target_label,
            event.ip_address or "",
            json.dumps(metadata, ensure_ascii=False, sort_keys=True) if metadata else "",
        ]
        yield [csv_safe(cell) for cell in row]


class _Echo:
    """A file that hands back what is written to it, so csv.writer can feed a stream."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[list[str]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow(row)
