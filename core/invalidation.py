"""Telling every worker, on every instance, that something its cached callers depend on
has changed: a revoked key, a member removed, an agent redeployed.

With a shared store, API workers answer a known token from a copy of its caller kept in
the process for at most CACHE_SECONDS (api/callers.py), and only after checking, in the
same Redis round trip as the call's rate-limit count, that no change to anything the copy
depends on is newer than the copy. A change sets a marker per thing it touched once its
transaction commits: the Redis clock's time of the marking, kept MARKER_SECONDS, far
longer than any copy lives. A copy carries the Redis clock's time of the round trip that
came just before its database read:

- a copy read before the change committed was read before the marker was set, so its
  time is not after the marker's: it is refused, and read again;
- a copy whose round trip came after the marker was set was read after the commit: it
  is fresh, and used until its CACHE_SECONDS are up, while the marker still stands.

So every call that starts after the change returned sees it, and a change costs each
worker one database read per caller it touched, not one per call for as long as the
marker stands. Both times come from the one Redis clock, so the instances' clocks do
not matter. If the markers cannot be set (Redis unreachable), the change waits out
CACHE_SECONDS before it returns instead: every copy read before the commit has expired
by then. Workers that cannot reach Redis use no copies at all. Without a shared store
there are no copies, and nothing to tell.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import transaction

from core.shared_store import StoreUnavailable, shared_store

CACHE_SECONDS = 2.0
MARKER_SECONDS = 30

# KEYS: the markers. ARGV[1]: their lifetime. Each is set to the Redis clock, in µs.
MARK_SCRIPT = """
local now = redis.call('TIME')
local at = now[1] * 1000000 + now[2]
for i = 1, #KEYS do redis.call('SET', KEYS[i], at, 'EX', ARGV[1]) end
return at
"""


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
            keys = [marker_key(i) for i in identities]
            (reply,) = store.round_trip(("EVAL", MARK_SCRIPT, len(keys), *keys, MARKER_SECONDS))
            if isinstance(reply, Exception):
                raise StoreUnavailable(str(reply))
        except StoreUnavailable:
            time.sleep(CACHE_SECONDS)

    transaction.on_commit(publish)
