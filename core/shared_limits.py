"""One rate-limit count for the two secrets of a rolled key, in the shared store.

api/callers.py counts each call in Redis in the round trip that comes before the database
is asked, so it counts by the keyed hash of the secret presented: it does not know the
key yet. A rolled key answers to its new secret and, through the overlap, to the one it
was rolled from, and counted by secret it had twice its limit all that while (up to
seven days). So a roll names both secrets' counts to one, the key's, for as long as the
overlap lasts and a counting window more: `<prefix>calls-of:<hash>` holds the name of the
key's count, and the admit script counts there instead (ADMIT_SCRIPT).

At the roll and at the overlap's end the count moves (to the key's, then back to the new
secret's own), so a key may get one window's calls more at each of those two moments,
never twice its limit for the overlap. Without a shared store each process counts by the
key already (api.rate_limits); with one that cannot be reached, limits fail open anyway.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.shared_store import StoreUnavailable, shared_store

# As long as a counter lives past its window (api.callers: twice the 60-s window).
_PAST_THE_OVERLAP_SECONDS = 120


def count_alias_key(digest: str) -> str:
    """Where a secret's count is named to another (the key's) while one is."""
    return f"{settings.REDIS_KEY_PREFIX}calls-of:{digest[:24]}"


def one_count_for(digests: tuple[str, ...], identity: str, *, until: datetime) -> None:
    """Count the calls of each secret of `digests` as the token `identity`'s (e.g.
    "api_key:42") until `until`, once the current transaction commits. If Redis cannot
    be reached each secret keeps counting alone: limits fail open, as they do then."""
    store = shared_store()
    if store is None or not digests:
        return

    def publish() -> None:
        seconds = int((until - timezone.now()).total_seconds()) + _PAST_THE_OVERLAP_SECONDS
        if seconds <= _PAST_THE_OVERLAP_SECONDS:
            return  # no overlap: the earlier secret works no more
        shared = f"{settings.REDIS_KEY_PREFIX}calls:{identity}"
        sets = [("SET", count_alias_key(digest), shared, "EX", seconds) for digest in digests]
        with contextlib.suppress(StoreUnavailable):  # (the store logged and counted it)
            store.round_trip(*sets)

    transaction.on_commit(publish)
