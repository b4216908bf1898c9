"""The project-wide call log: every call of the project's keys, the client tokens they
minted and members' personal access tokens, newest first, with the per-key log's filters
plus key, token type, request id, user agent and path; and one call in full.

Keyset pages on the (project, created_at, id) index, like the per-key log on its own.
The user agent and path filters are the per-key log's (LogFilters), bounded to
usage.key_usage.TEXT_SEARCH_SPAN of calls at a time, which prunes the walk to a day's
partitions on PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass

from accounts.models import Project
from apikeys.models import ApiKey
from apikeys.tokens import TokenKind
from usage.key_usage import PAGE_SIZE, Cursor, LogFilters, LogPage, log_page_of
from usage.models import UsageRecord, UsageRecordQuerySet


@dataclass(frozen=True, slots=True)
class ProjectLogFilters:
    """The per-key log's filters, and which key, which kind of token, which request."""

    calls: LogFilters
    api_key: ApiKey | None = None
    token_kind: str = ""
    request_id: str = ""

    def apply(self, records: UsageRecordQuerySet) -> UsageRecordQuerySet:
        records = self.calls.apply(records)
        if self.api_key is not None:
            records = records.filter(api_key=self.api_key)
        if self.token_kind:
            records = records.filter(token_kind=self.token_kind)
            # What the kind implies, said outright so that the database can prove a
            # key's partial indexes apply (usage_key_own_time, usage_key_tokens_time): a
            # key's log exports "The key itself" as API key calls, and without it the
            # export passed over every call of the key's client tokens to find its own.
            if self.token_kind == TokenKind.API_KEY:
                records = records.filter(client_token__isnull=True)
            elif self.token_kind == TokenKind.CLIENT_TOKEN:
                records = records.filter(client_token__isnull=False)
        if self.request_id:
            records = records.filter(request_id=self.request_id)
        return records


def project_calls(project: Project) -> UsageRecordQuerySet:
    """The project's rows and nothing else: the fence every read here starts from."""
    return UsageRecord.objects.filter(project=project).select_related(
        "api_key", "client_token", "personal_token"
    )


def project_log_page(
    *,
    project: Project,
    filters: ProjectLogFilters,
    before: Cursor | None = None,
    after: Cursor | None = None,
    size: int = PAGE_SIZE,
    oldest_first: bool = False,
) -> LogPage:
    return log_page_of(
        filters.apply(project_calls(project)),
        before=before,
        after=after,
        size=size,
        oldest_first=oldest_first,
    )


def project_call(project: Project, request_id: str) -> UsageRecord | None:
    """One call of the project by its request id (None: not this project's, or none)."""
    if "\x00" in request_id:
        return None  # no row can hold one, and PostgreSQL refuses it in a query's text
    return project_calls(project).filter(request_id=request_id).first()
