"""Telling every worker, on every instance, that something its cached callers depend on
has changed: a revoked key, a member removed, an agent redeployed.

With a shared store, API workers answer a known token from a copy of its caller kept in
the process for at most CACHE_SECONDS (api/callers.py), and only after checking, in the
same Redis round trip as the call's rate-limit count, that no change marker exists for
anything the copy depends on. A change sets those markers once its transaction commits,
for MARKER_SECONDS, which is far longer than any copy lives:

- a copy read from the database before the change committed is refused while the marker
  stands, and has expired when it goes;
- a copy read after the commit is fresh.

So every call that starts after the change returned sees it. If the markers cannot be
set (Redis unreachable), the change waits out CACHE_SECONDS before it returns instead:
every copy read before the commit has expired by then. Workers that cannot reach Redis
use no copies at all. Without a shared store there are no copies, and nothing to tell.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import transaction

from core.shared_store import StoreUnavailable, shared_store

CACHE_SECONDS = 2.0
MARKER_SECONDS = 30


def marker_key(identity: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}changed:{identity}"


def changed(*identities: str) -> None:
    """Mark `identities` (e.g. "api_key:42", "user:7") as changed once the current
    transaction commits (at once outside one)."""
    store = shared_store()
    if store is None or not identities:
        return

    def publish() -> None:
        try:
            store.round_trip(
                *(("SET", marker_key(i), "1", "EX", MARKER_SECONDS) for i in identities)
            )
        except StoreUnavailable:
            time.sleep(CACHE_SECONDS)

    transaction.on_commit(publish)
