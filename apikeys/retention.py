"""How long client tokens are kept once they end: `manage.py prune_client_tokens`, daily.

A backend mints a client token per browser session, each lives a day at most
(CLIENT_TOKEN_MAX_TTL) and is never used again once it ends, and each row stayed for good.
One that ended (expired or revoked) more than KEEP ago is removed, unless something still
shows it:

- an alert (Flag.client_token cascades: removing the token would remove the alert);
- a call in the usage log (UsageRecord.client_token cascades: the key's and the project's
  logs would lose the call), among them calls made with it long after it ended, refused
  and logged. The log's retention (prune_usage) lets it go, and a later run removes it.

The client tokens page shows the tokens alive in the last 7 days, far inside KEEP; the
audit trail names a token by its public id, not its row, and keeps it. An API call with
a removed token is answered as one with a token never minted (401 invalid_api_key).

Every token ends by its expiry at the latest (a revocation, its key's, a roll, only end it
sooner), so "ended more than KEEP ago" is `expires_at` before the cut-off, and a token
minted after the cut-off cannot have. One statement per PROJECTS projects finds those
with a token to remove; the others (their old tokens all kept) cost nothing more. Then
project by project, oldest first along the (project, created_at) index, a thousand
tokens per DELETE, each its own transaction. The DELETE names the rows and checks them
again, and never cascades: a call logged with a token meanwhile makes the database
refuse the batch rather than lose the call. A project whose batch fails (its rows held
by another transaction past the lock timeout, a statement past the statement timeout) is
logged, counted and left to the next run; the others go on. Only the database going
away stops the run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import batched

from django.db import transaction
from django.db.models import Exists, ForeignObjectRel, OuterRef, Q, Value
from django.db.models.expressions import Combinable
from django.utils import timezone

from accounts.models import Project
from apikeys.models import ClientToken
from core.db_errors import run_must_stop

logger = logging.getLogger(__name__)

KEEP = timedelta(days=30)
BATCH = 1000  # tokens per DELETE, so no one statement holds the table for long
PROJECTS = 1000  # project ids read at a time
# How far before a token's creation a call with it may be logged: servers whose clocks
# disagree (the detector allows the same, alerts/detection/run.py READ_MARGIN).
CLOCK_SLACK = timedelta(hours=1)
FIRST_MOMENT = datetime.min.replace(tzinfo=UTC)


@dataclass
class PruneResult:
    """What one run of client_tokens_prune() did, printed by prune_client_tokens."""

    removed: int = 0
    # Projects whose old tokens could not all be removed: logged, tried again next run.
    skipped: int = 0


def client_tokens_prune(*, now: datetime | None = None) -> PruneResult:
    """Remove the client tokens that ended more than KEEP ago and that neither an alert nor
    the usage log points to; how many went, and how many projects wait for the next run."""
    cutoff = (now or timezone.now()) - KEEP
    result = PruneResult()
    for project_id in _projects_with_tokens_to_remove(cutoff):
        try:
            result.removed += _project_prune(project_id, cutoff)
        except Exception as error:
            if run_must_stop(error):
                raise  # the database is gone (or its SQL cannot run): the next run retries
            # One project's rows (held by a long transaction, too many for the statement
            # timeout) must not keep every other project's from going.
            logger.exception("old client tokens of project %s not pruned", project_id)
            result.skipped += 1
    return result


def _projects_with_tokens_to_remove(cutoff: datetime) -> list[int]:
    """The projects that have a token to remove, found for PROJECTS projects at a time.

    A project's DELETE checks its tokens against the usage log, partitioned by day, and
    PostgreSQL plans it across every partition, 13-70 ms with 108 of them: 2,000 projects
    whose old tokens the log keeps cost 55 s a run that removed nothing. One statement
    per PROJECTS projects finds those with a token that ended before `cutoff` and that
    nothing points to; only they are pruned (and their DELETE checks again). A chunk
    whose statement fails is pruned project by project, as before."""
    found: list[int] = []
    for chunk in batched(_project_ids(), PROJECTS):
        ended = ClientToken.objects.filter(
            project_id__in=chunk, created_at__lt=cutoff, expires_at__lt=cutoff
        )
        removable = ended.exclude(_called_since(OuterRef("created_at") - CLOCK_SLACK))
        removable = removable.exclude(_named_by("flags"))
        try:
            found += (
                removable.order_by("project_id").values_list("project_id", flat=True).distinct()
            )
        except Exception as error:
            if run_must_stop(error):
                raise
            logger.exception("old client tokens not looked for; each project is pruned")
            found += chunk
    return found


def _project_ids() -> list[int]:
    """Every project's id, deleted ones too (their tokens stay until pruned)."""
    ids: list[int] = []
    while batch := list(
        Project.objects.filter(pk__gt=ids[-1] if ids else 0)
        .order_by("pk")
        .values_list("pk", flat=True)[:PROJECTS]
    ):
        ids += batch
    return ids


def _project_prune(project_id: int, cutoff: datetime) -> int:
    """Remove `project_id`'s client tokens that ended before `cutoff` and that nothing
    points to, a batch at a time; how many went."""
    minted_before = ClientToken.objects.filter(project_id=project_id, created_at__lt=cutoff)
    ended = minted_before.filter(expires_at__lt=cutoff).exclude(_named_by("flags"))
    removed = 0
    after: tuple[datetime, int] | None = None
    while True:
        page = minted_before.order_by("created_at", "pk")
        if after is not None:
            # The range bounds the index scan; the Q only settles ties of one moment.
            page = page.filter(created_at__gte=after[0]).filter(
                Q(created_at__gt=after[0]) | Q(pk__gt=after[1])
            )
        rows = list(page.values_list("created_at", "pk")[:BATCH])
        if not rows:
            return removed
        # No call by a token is before its creation: from the page's oldest on, as a
        # constant, so that PostgreSQL plans the check on those days' partitions alone.
        # One minted within the slack of year 1 (by hand, an import) overflowed here, and
        # its project's tokens were never pruned again: from the calendar's start instead.
        called = _called_since(Value(max(rows[0][0], FIRST_MOMENT + CLOCK_SLACK) - CLOCK_SLACK))
        with transaction.atomic():
            doomed = ended.exclude(called).filter(pk__in=[pk for _, pk in rows])
            # Not delete(): it would cascade to a call or alert that came since the check.
            removed += doomed._raw_delete(doomed.db)
        after = rows[-1]


def _called_since(since: Combinable) -> Exists:
    """Whether the usage log holds a call with the token from `since` on (its partitions
    before `since` are not read). A call is logged at its time, and none is made before
    the token is minted; CLOCK_SLACK covers servers whose clocks disagree."""
    return _named_by("usage", created_at__gte=since)


def _named_by(relation: str, **also: object) -> Exists:
    """Whether a row of the reverse relation `relation` (UsageRecord's `usage`, Flag's
    `flags`) names the token: NOT EXISTS, which stops at the first of a token's calls, where
    a join would read them all. Reached through the relation, as apikeys imports neither
    app above it."""
    reverse = ClientToken._meta.get_field(relation)
    assert isinstance(reverse, ForeignObjectRel)
    rows = reverse.related_model._default_manager.filter(**{reverse.field.name: OuterRef("pk")})
    return Exists(rows.filter(**also))
