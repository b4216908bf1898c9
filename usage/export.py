"""The usage log as CSV rows, for both of its exports: the overview's (exactly the rows
that the overview with the same filters counts, usage.overview.OverviewFilters) and the
call log's (exactly the rows that the project's call log with the same filters lists,
usage.project_log.ProjectLogFilters). One header and one row function serve both, so
the two files have the same columns (issue 13).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import batched

from django.db.models import QuerySet

from accounts.models import Project
from apikeys.models import ApiKey, ClientToken, PersonalAccessToken
from core.csv_stream import IP_COLUMN, TIME_COLUMN, csv_header, export_bounded
from usage.key_usage import NEWEST_FIRST, OLDEST_FIRST
from usage.models import UsageRecordQuerySet
from usage.overview import OverviewFilters
from usage.project_log import ProjectLogFilters

USAGE_CSV_HEADER = csv_header(
    TIME_COLUMN,
    "key_name",
    "key_hint",
    "token_type",
    "client_token_id",
    "method",
    "path",
    "agent",
    "status",
    "error_code",
    "outcome",
    "latency_ms",
    IP_COLUMN,
    "user_agent",
    "request_id",
)
# A personal access token's calls span projects: its file names each call's, after the time.
PERSONAL_TOKEN_CSV_HEADER = csv_header(TIME_COLUMN, "project", *USAGE_CSV_HEADER.names[1:])
EXPORT_CHUNK = 2000
NO_NAME = ("", "")


def usage_export_rows(*, project: Project, filters: OverviewFilters) -> Iterator[list[object]]:
    """The rows the overview counts, newest first (USAGE_CSV_HEADER)."""
    return usage_csv_rows(project=project, records=filters.records(project))


def project_calls_export_rows(
    *, project: Project, filters: ProjectLogFilters, oldest_first: bool = False
) -> Iterator[list[object]]:
    """The rows the call log lists over all its pages, newest first or oldest first as
    the log (USAGE_CSV_HEADER). The project fence (or its key's) comes first, as on the
    page."""
    records = filters.records(project)
    order = OLDEST_FIRST if oldest_first else NEWEST_FIRST
    return usage_csv_rows(project=project, records=records, order=order)


def usage_csv_rows(
    *,
    project: Project | None,
    records: UsageRecordQuerySet,
    order: tuple[str, ...] = NEWEST_FIRST,
) -> Iterator[list[object]]:
    """`records` (of `project`, or of a personal access token: None) in `order`, newest
    first by default, one list of cells per row (USAGE_CSV_HEADER; a PAT's,
    PERSONAL_TOKEN_CSV_HEADER, with each call's project slug after its time). A PAT's
    rows name no key, so none is looked up for them.

    Read in chunks through a database cursor (server-side on PostgreSQL), so a million
    rows never sit in memory at once, and no more than a file holds (export_bounded: the
    call log has no time range that must be given). Names come from small lookups rather
    than joins: per chunk, the keys, PATs and client tokens it mentions and no earlier
    chunk did, which keeps the scan a plain walk down the (project, created_at) index.

    A personal access token's call names the PAT in the key columns; the token type column
    says which it is. No token, hash or secret is read: the log holds none, and the key
    columns are the name and the display hint. Cells are raw values: core.csv_stream
    writes the time and quotes text that a spreadsheet would run.
    """
    keys: dict[int, tuple[str, str]] = {}
    project_keys = ApiKey.objects.for_project(project) if project else ApiKey.objects.none()
    pats: dict[int, tuple[str, str]] = {}
    slugs: dict[int, str] = {}
    rows = records.order_by(*order).values_list(
        "project_id",
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
    for chunk in batched(export_bounded(rows).iterator(chunk_size=EXPORT_CHUNK), EXPORT_CHUNK):
        _learn_names(keys, project_keys, {row[2] for row in chunk})
        _learn_names(pats, PersonalAccessToken.objects.all(), {row[3] for row in chunk})
        if project is None:
            wanted = {row[0] for row in chunk} - slugs.keys() - {None}
            slugs.update(Project.objects.filter(pk__in=wanted).values_list("pk", "slug"))
        public_ids = dict(
            ClientToken.objects.filter(
                pk__in={row[5] for row in chunk if row[5] is not None}
            ).values_list("pk", "public_id")
        )
        for (
            project_id,
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
            where = [] if project is not None else [slugs.get(project_id, "")]
            yield [
                created_at,
                *where,
                name,
                hint,
                kind,
                public_ids.get(client_token_id, ""),
                method,
                path,
                agent,
                status,
                error_code,
                outcome,
                f"{latency_us / 1000:.3f}",
                ip,
                user_agent,
                request_id,
            ]


def _learn_names(
    known: dict[int, tuple[str, str]],
    tokens: QuerySet[ApiKey] | QuerySet[PersonalAccessToken],
    ids: set[int | None],
) -> None:
    """The (name, hint) of each of `ids` that `known` lacks, added to it: a chunk names a
    few keys or PATs, read by primary key, rather than every key the project ever had."""
    wanted = {pk for pk in ids if pk is not None and pk not in known}
    if wanted:
        for pk, name, hint in tokens.filter(pk__in=wanted).values_list("pk", "name", "hint"):
            known[pk] = (name, hint)
