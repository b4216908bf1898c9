"""The project-wide call log: every call of the project's keys, the client tokens they
minted and members' personal access tokens, newest first, with the per-key log's filters
plus key, token type, request id, user agent and path; and one call in full.

Keyset pages on the (project, created_at, id) index, like the per-key log on its own;
narrowed to a key, on the key's indexes, asked as the key's own log asks
(ProjectLogFilters.records).
The user agent and path filters are the per-key log's (LogFilters), bounded to
usage.key_usage.TEXT_SEARCH_SPAN of calls at a time, which prunes the walk to a day's
partitions on PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q

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

    def records(self, project: Project) -> UsageRecordQuerySet:
        """The calls of `project` these filters list: what its log's pages and its export
        read. With a key named (one of the project's, as the form offers), the key's calls
        are the fence, as on the key's own page: they are all its project's, and project
        said beside the key was implied but estimated apart, a fraction of the key's calls
        in a log of many projects."""
        if self.api_key is None:
            return self.apply(project_calls(project))
        if self.api_key.project_id != project.pk:
            return UsageRecord.objects.none()
        fence = UsageRecord.objects.for_key(self.api_key)
        return self._narrow(fence.select_related("api_key", "client_token", "personal_token"))

    def apply(self, records: UsageRecordQuerySet) -> UsageRecordQuerySet:
        if self.api_key is not None:
            records = records.filter(api_key=self.api_key)
        return self._narrow(records)

    def _narrow(self, records: UsageRecordQuerySet) -> UsageRecordQuerySet:
        """`records` narrowed by all but the key."""
        records = self.calls.apply(records)
        if self.token_kind:
            records = records.filter(self._kind_condition())
        if self.request_id:
            records = records.filter(request_id=self.request_id)
        return records

    def _kind_condition(self) -> Q:
        """The calls of the token type. A key's calls are its own (no client token) or its
        client tokens' (one): with a key named, that alone says it, in the words of the
        key's log (its Caller), whose export this is, and token_kind is left out. Said
        beside them it was implied but estimated apart: in a day of mostly PATs' and
        client tokens' calls the planner took the key's API key calls for a sliver of
        them (12,000 of 200,000) and read and sorted every call of the key. Without a key,
        the token type, and what it implies, so that a key's partial indexes
        (usage_key_own_time, usage_key_tokens_time) are proved to apply."""
        implied = {
            TokenKind.API_KEY.value: Q(client_token__isnull=True),
            TokenKind.CLIENT_TOKEN.value: Q(client_token__isnull=False),
        }.get(self.token_kind)
        if implied is None:
            return Q(token_kind=self.token_kind)
        if self.api_key is not None:
            return implied
        return Q(token_kind=self.token_kind) & implied


def project_calls(project: Project) -> UsageRecordQuerySet:
    """The project's rows and nothing else: the fence every read here starts from (a
    key's rows, with a key named: ProjectLogFilters.records)."""
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
        filters.records(project),
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
