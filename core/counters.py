"""A fixed-window counter in the cache: API rate limits per token, and throttles on what
anyone may ask for that costs us (a sign-up's password hash, a reset email)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from django.core.cache import cache
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache

logger = logging.getLogger(__name__)

WARN_EVERY = 10.0  # seconds between two warnings that the cache did not count (per process)


class _ProcessCounts(LocMemCache):
    """Counts kept in this process's memory. Never memcached: any text is a key (a
    bucket may hold what someone typed), so no key warnings."""

    def validate_key(self, key: str) -> None:
        return None


# Where a throttle counts while the shared cache (Redis) cannot: this process's memory.
_IN_PROCESS = _ProcessCounts(
    "throttles-while-the-cache-is-away", {"OPTIONS": {"MAX_ENTRIES": 10_000}}
)


@dataclass
class _Warned:
    """When this process last said the cache could not count, and how many uses since.
    One line per use flooded the log while Redis was away (every failed sign-in writes
    one); as core.shared_store does, one line every WARN_EVERY seconds, with the count."""

    last: float | None = None
    uses: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def warn(self, bucket: str, *, counted: bool) -> None:
        now = time.monotonic()
        with self.lock:
            self.uses += 1
            if self.last is not None and now - self.last < WARN_EVERY:
                return
            uses, self.uses, self.last = self.uses, 0, now
        what = "counted in this process only" if counted else "not given (a courtesy)"
        logger.warning(
            "throttle %s %s: the cache did not answer (%d uses since the last such warning)",
            bucket.split(":")[0],
            what,
            uses,
        )


_warned = _Warned()


def window_count(bucket: str, *, window_seconds: int, now: float | None = None) -> int:
    """Count one more use of `bucket` in the current clock window; return the count so far.
    Atomic in Redis and within one process's local-memory cache."""
    return _counted(cache, bucket, window_seconds=window_seconds, now=now)


def _counted(store: BaseCache, bucket: str, *, window_seconds: int, now: float | None) -> int:
    window = int((time.time() if now is None else now) // window_seconds)
    key = f"count:{bucket}:{window}"
    store.add(key, 0, timeout=window_seconds * 2)
    try:
        return store.incr(key)
    except ValueError:  # evicted between add and incr
        store.set(key, 1, timeout=window_seconds * 2)
        return 1


def throttle_allows(
    bucket: str, *, limit: int, window_seconds: int, uncounted: bool = True
) -> bool:
    """Count one more use of `bucket`; False once `limit` uses fall in the current window.

    If the cache (Redis) cannot count, the use is counted in this process's memory instead
    and the failure logged: each worker then allows `limit` on its own. Neither open nor
    shut: a throttle that let everything through while Redis was away took the brake off
    guessing a second-factor code or a password at the sudo prompt (a million codes, three
    of them right, against 20 an hour), and one that refused everything would take sign-up
    and password reset down with Redis. What is only a courtesy (a mail to an address
    with no account) passes `uncounted=False`: not sent at all while nothing can count."""
    try:
        count = window_count(f"throttle:{bucket}", window_seconds=window_seconds)
    except Exception:
        _warned.warn(bucket, counted=uncounted)
        if not uncounted:
            return False
        count = _counted(_IN_PROCESS, f"throttle:{bucket}", window_seconds=window_seconds, now=None)
    return count <= limit
