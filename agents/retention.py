"""How long the execution log is kept: `manage.py prune_executions --older-than 90d`, daily,
with the usage log's retention (USAGE_RETENTION) under run_scheduler.

An execution holds what its call sent and what the agent answered (prompts and outputs,
up to 16 KB of JSON each: the customer's data, and whatever was pasted into it), a row for
every invoke and chat of every project, and nothing removed them: they were kept for good,
long after the call's usage row had gone, in a table every tenant's traffic grows. They go
with their calls now: the cut-off is the usage log's (usage.retention.usage_cutoff, the
start of a UTC hour), so `GET /v1/execution-logs` and the call log reach back as far.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from agents.models import Execution
from core.batched_delete import delete_in_batches
from usage.retention import usage_cutoff


@dataclass(frozen=True)
class ExecutionsPruned:
    """What a run removed: the executions that ran before `cutoff`."""

    cutoff: datetime
    removed: int


def executions_prune(*, older_than: timedelta, now: datetime | None = None) -> ExecutionsPruned:
    """Delete every project's executions that ran before the cut-off for `older_than`,
    1,000 a statement along their time's index (core/batched_delete.py), so that a year
    of one tenant's runs never makes a statement outlast DB_STATEMENT_TIMEOUT."""
    cutoff = usage_cutoff(older_than=older_than, now=now or timezone.now())
    old = Execution.objects.filter(created_at__lt=cutoff)
    return ExecutionsPruned(cutoff=cutoff, removed=delete_in_batches(old, order_by="created_at"))
