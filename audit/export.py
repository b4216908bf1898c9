"""The audit trail as CSV rows, for the audit pages' export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC

from audit.actions import action_label
from audit.models import AuditEventQuerySet
from audit.reads import actor_label
from core.csv_stream import csv_safe

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


def audit_csv_rows(events: AuditEventQuerySet) -> Iterator[list[str]]:
    """One row per event, newest first, read from the database in chunks so that a long
    log never sits in memory whole. Text that people typed is made inert for spreadsheets."""
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
