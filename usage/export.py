"""A project's usage log as CSV rows: exactly the rows that the overview with the same
filters counts (usage.overview.OverviewFilters)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from itertools import batched

from accounts.models import Project
from apikeys.models import ApiKey, ClientToken, PersonalAccessToken
from core.csv_stream import csv_safe
from usage.overview import OverviewFilters

EXPORT_COLUMNS = (
    "time",
    "key name",
    "key hint",
    "token type",
    "client token id",
    "method",
    "path",
    "agent",
    "status",
    "error code",
    "outcome",
    "latency ms",
    "ip",
    "user agent",
    "request id",
)
EXPORT_CHUNK = 2000


def usage_export_rows(*, project: Project, filters: OverviewFilters) -> Iterator[list[object]]:
    """The matching log rows, newest first, one list of cells per row (EXPORT_COLUMNS).

    Read in chunks through a database cursor (server-side on PostgreSQL), so a million
    rows never sit in memory at once. Names come from small lookups rather than joins:
    the project's keys once, and per chunk the PATs and client tokens it mentions, which
    keeps the scan a plain walk down the (project, created_at) index.

    A personal access token's call names the PAT in the key columns; the token type column
    says which it is. No token, hash or secret is read: the log holds none, and the key
    columns are the name and the display hint. Text that a caller or a user chose (key
    name, method, path, agent, user agent) is made safe for spreadsheets (`_inert`).
    """
    keys = {
        pk: (csv_safe(name), hint)
        for pk, name, hint in ApiKey.objects.for_project(project).values_list("pk", "name", "hint")
    }
    pats: dict[int, tuple[str, str]] = {}
    rows = (
        filters.records(project)
        .order_by("-created_at", "-id")
        .values_list(
            "created_at",
            "api_key_id",
            "personal_token_id",
            "token_kind",
            "client_token_id",
            "method",
            "path",
            "agent",
            "status",
            "error_code",
            "outcome",
            "latency_us",
            "ip",
            "user_agent",
            "request_id",
        )
    )
    for chunk in batched(rows.iterator(chunk_size=EXPORT_CHUNK), EXPORT_CHUNK):
        new_pats = {row[2] for row in chunk if row[2] is not None and row[2] not in pats}
        if new_pats:
            for pk, name, hint in PersonalAccessToken.objects.filter(pk__in=new_pats).values_list(
                "pk", "name", "hint"
            ):
                pats[pk] = (csv_safe(name), hint)
        public_ids = dict(
            ClientToken.objects.filter(
                pk__in={row[4] for row in chunk if row[4] is not None}
            ).values_list("pk", "public_id")
        )
        for (
            created_at,
            key_id,
            pat_id,
            kind,
            client_token_id,
            method,
            path,
            agent,
            status,
            error_code,
            outcome,
            latency_us,
            ip,
            user_agent,
            request_id,
        ) in chunk:
            name, hint = keys.get(key_id, NO_NAME) if key_id else pats.get(pat_id, NO_NAME)
            yield [
                created_at.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z",
                name,
                hint,
                kind,
                public_ids.get(client_token_id, ""),
                csv_safe(method),
                csv_safe(path),
                csv_safe(agent),
                status,
                error_code,
                outcome,
                f"{latency_us / 1000:.3f}",
                ip or "",
                csv_safe(user_agent),
                request_id,
            ]


NO_NAME = ("", "")
