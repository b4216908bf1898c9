"""The audit trail as CSV rows, for the audit pages' export."""

from __future__ import annotations

import json
from collections.abc import Iterator

from audit.actions import action_label
from audit.models import AuditEventQuerySet
from audit.reads import actor_label
from core.csv_stream import IP_COLUMN, TIME_COLUMN, csv_header, export_bounded
from core.redact import redact_secrets

CSV_HEADER = csv_header(
    TIME_COLUMN,
    "project",
    "actor",
    "action",
    "action_label",
    "target_type",
    "target_id",
    "target_label",
    IP_COLUMN,
    "details",
    "user_agent",
)


def audit_csv_rows(events: AuditEventQuerySet) -> Iterator[list[object]]:
    """One row per event, newest first (CSV_HEADER), read from the database in chunks so
    that a long log never sits in memory whole, and no more than a file holds
    (export_bounded). The filters narrow the (project or actor, created_at) index walk
    that the pages use. Cells are raw values: core.csv_stream
    writes the time and makes text that people typed inert for spreadsheets."""
    ordered = events.select_related("project").order_by("-created_at", "-id")
    for event in export_bounded(ordered).iterator(chunk_size=2000):
        metadata = event.metadata if isinstance(event.metadata, dict) else {}
        yield [
            event.created_at,
            event.project.slug if event.project else "",
            actor_label(event),
            event.action,
            action_label(event.action),
            event.target_type,
            event.target_id,
            redact_secrets(event.target_label),  # as the pages show it (AuditEntry.target)
            event.ip_address,
            # A token typed into an event before the forms refused one (a suspension's
            # reason) stays in the append-only trail, and out of the file (as the pages).
            redact_secrets(json.dumps(metadata, ensure_ascii=False, sort_keys=True))
            if metadata
            else "",
            event.user_agent,
        ]
