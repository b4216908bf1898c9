"""Reading the audit trail for its pages: filters, one keyset page, and how events read.

A project's page shows the events of that project; a person's page shows what they did
and the sign-in attempts on their account. Both read one page at a time, newest first on
(created_at, id), on the (project, created_at) or (actor, created_at) index.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from audit.actions import Tone, action_group, action_label, action_tone
from audit.models import AuditEvent, AuditEventQuerySet
from core.paging import keyset_page
from core.redact import redact_secrets
from core.text_direction import text_isolated

PAGE_SIZE = 50
NEWEST_FIRST = ("-created_at", "-id")


# -- How an event reads ---------------------------------------------------------------------


def event_tone(event: AuditEvent) -> Tone:
    if event.action == "user.sign_in_failed" and event.metadata.get("locked_out"):
        return "danger"
    return action_tone(event.action)


def actor_label(event: AuditEvent, *, isolated: bool = False) -> str:
    """Who did it: a person's email, or the API key that minted a client token.
    `isolated`: for a page, the key's name between FSI and PDI (the export keeps it as it
    was written)."""
    if event.actor_email:
        return event.actor_email
    minted_by = event.metadata.get("minted_by") if isinstance(event.metadata, dict) else None
    if minted_by:
        return f"API key {label_as_typed(str(minted_by)) if isolated else minted_by}"
    if by_key := _via_key(event):
        # A deploy or a client token's revoke over /v1 by a key: the key did it.
        return f"API key {label_as_typed(by_key) if isolated else by_key}"
    if isinstance(event.metadata, dict) and event.metadata.get("via") == "api":
        return "API"
    return ""


def _via_key(event: AuditEvent) -> str:
    """The label of the API key an event says it came through ("via"), or ""."""
    via = event.metadata.get("via") if isinstance(event.metadata, dict) else None
    if not isinstance(via, str):
        return ""
    named = _NAME_AND_HINT.fullmatch(via)
    return via if named and named[2].startswith("(reminix_sk_") else ""


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


# A token's label as audit_record keeps it (str() of an ApiKey or PAT): "name (hint)".
_NAME_AND_HINT = re.compile(r"(.*) (\(reminix_[a-z]+_[A-Za-z0-9]+…[A-Za-z0-9]+\))", re.DOTALL)


def label_as_typed(label: str) -> str:
    """A target's label as a page shows it, between FSI and PDI unless ASCII; a token's
    "name (hint)" with its name alone isolated, so that an override in the name (saved
    before names refused one) does not reverse the hint after it."""
    named = _NAME_AND_HINT.fullmatch(label)
    if named:
        return f"{text_isolated(named[1])} {named[2]}"
    return text_isolated(label)


def _as_typed(value: object) -> str:
    """A value people typed or chose (a name, a reason, a device), or a list of them, each
    between FSI and PDI unless ASCII (core.text_direction.text_isolated): a name holding a
    direction override, saved before names refused one, reverses nothing after it ("from
    → to", the next name of a list). A token's secret in it is cut first."""
    if isinstance(value, list | tuple) and value:
        return ", ".join(_as_typed(item) for item in value)
    return text_isolated(redact_secrets(_text(value)))


def event_details(event: AuditEvent) -> list[tuple[str, str]]:
    """The event's metadata as short (name, value) pairs, for the pages; a change reads
    "from → to", each side isolated (_as_typed). A token's secret in it is cut
    (core.redact.redact_secrets), as the export cuts it; the export writes the metadata as
    it was stored (audit.export)."""
    metadata: dict[str, Any] = (
        event.metadata if isinstance(event.metadata, dict) else {"value": event.metadata}
    )
    details: list[tuple[str, str]] = []
    skip = set()
    if "from" in metadata and "to" in metadata:
        details.append(("changed", f"{_as_typed(metadata['from'])} → {_as_typed(metadata['to'])}"))
        skip |= {"from", "to"}
    if not event.actor_email:
        skip.add("minted_by")  # shown as the actor instead
        if _via_key(event):
            skip.add("via")
    for key, value in metadata.items():
        if key in skip:
            continue
        if key.endswith("_at"):  # expires_at, previous_expires_at: read as the page's dates
            details.append((key.removesuffix("_at").replace("_", " "), _moment(value)))
        elif key.endswith("_seconds") and _is_duration(value):  # overlap, ttl
            details.append((key.removesuffix("_seconds").replace("_", " "), _duration(value)))
        elif key.endswith("_seconds"):  # older code's or an import's: named and read as kept
            details.append((key.replace("_", " "), _stored(value)))
        elif key == "projects" and not value:
            details.append(("projects", "all of the user's"))
        else:
            details.append((key.replace("_", " "), _as_typed(value)))
    # An event is never changed (append-only), but a token typed into one before the forms
    # refused it (a suspension's reason) is not shown again to every member.
    return [(name, redact_secrets(text)) for name, text in details]


def _moment(value: object) -> str:
    if not value:
        return "never"
    try:
        moment = datetime.fromisoformat(str(value))
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):  # not a time, or one past the calendar's edge in UTC
        return str(value)
    return f"{moment:%-d %b %Y, %H:%M} UTC"


def _is_duration(value: object) -> bool:
    """A whole number of seconds, not negative: a bool is an int to Python ('True
    seconds'), and a negative count divides evenly ('-1 hours')."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _stored(value: object) -> str:
    return json.dumps(value) if isinstance(value, bool) else _text(value)


def _duration(seconds: int) -> str:
    """As the forms offer them: "none", "1 hour", "24 hours", "7 days", "90 seconds"."""
    if seconds == 0:
        return "none"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds % size == 0 and (unit != "day" or seconds >= 2 * 86400):
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An event as the audit pages show it."""

    event: AuditEvent
    label: str
    tone: Tone
    actor: str
    # The target's name as it was then, a token kept in it before names refused one cut
    # (the names themselves were cut on upgrade; the trail is append-only), its name
    # isolated (label_as_typed). The actor's minting key's name and the details too.
    target: str
    details: list[tuple[str, str]]

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEntry:
        return cls(
            event=event,
            label=action_label(event.action),
            tone=event_tone(event),
            actor=actor_label(event, isolated=True),
            target=label_as_typed(redact_secrets(event.target_label)),
            details=event_details(event),
        )


# -- Filters and pages ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditFilters:
    """What a page is narrowed to; empty fields do not narrow. Dates are whole UTC days,
    `until` included."""

    group: str = ""
    actor: str = ""
    actor_id: int | None = None  # one person, under every address they acted as
    ip: str = ""
    since: date | None = None
    until: date | None = None
    # One key or token, by its model's name and id (as audit_record keeps them).
    target: tuple[str, int] | None = None

    def apply(self, events: AuditEventQuerySet) -> AuditEventQuerySet:
        if self.group:
            events = events.filter(action__startswith=action_group(self.group).prefix)
        if self.actor:
            # A whole address is that address only: ann@example.com is not also
            # joann@example.com. Part of one ("grace@", "@example.com") finds everyone
            # whose address holds it. (The actor column links to a person, `actor_id`:
            # an address can change hands, or its holder move to another.)
            if _is_address(self.actor):
                events = events.filter(actor_email__iexact=self.actor)
            else:
                events = events.filter(actor_email__icontains=self.actor)
        if self.actor_id is not None:
            events = events.filter(actor_id=self.actor_id)
        if self.ip:
            events = events.filter(ip_address=self.ip)
        if self.target is not None:
            kind, pk = self.target
            events = events.filter(target_type=kind, target_id=str(pk))
        if self.since is not None:
            events = events.filter(created_at__gte=_day_start(self.since))
        if self.until is not None:
            events = events.filter(created_at__lt=_day_start(self.until + timedelta(days=1)))
        return events


def actor_address(*, scope: AuditEventQuerySet, actor_id: int) -> str:
    """The address person `actor_id` last acted as in `scope`, or "" if they never did
    there: a person filter names nobody from outside the log it narrows."""
    return (
        scope.filter(actor_id=actor_id)
        .order_by(*NEWEST_FIRST)
        .values_list("actor_email", flat=True)
        .first()
        or ""
    )


def target_name(*, scope: AuditEventQuerySet, target: tuple[str, int]) -> str:
    """The target's name as its latest event in `scope` gave it, a token in it cut, for
    the page (label_as_typed); "" if it has no event there (the filter then names nothing
    from outside the log)."""
    kind, pk = target
    label = (
        scope.filter(target_type=kind, target_id=str(pk))
        .order_by(*NEWEST_FIRST)
        .values_list("target_label", flat=True)
        .first()
    )
    return label_as_typed(redact_secrets(label or ""))


def _is_address(text: str) -> bool:
    try:
        validate_email(text)
    except ValidationError:
        return False
    return True


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
    keys: dict[str, tuple[datetime, int] | None] = {"following": None, "preceding": None}
    for name, cursor_id in (("following", before), ("preceding", after)):
        if cursor_id is not None:
            anchor = scope.filter(pk=cursor_id).values_list("created_at", flat=True).first()
            if anchor is None:
                raise StaleCursor(cursor_id)
            keys[name] = (anchor, cursor_id)
    page = keyset_page(
        filters.apply(scope).select_related("project"), order=NEWEST_FIRST, size=size, **keys
    )
    return AuditPage(
        [AuditEntry.of(event) for event in page.rows],
        newer=page.previous[1] if page.previous else None,
        older=page.next[1] if page.next else None,
        is_newest=page.is_first,
    )
