"""A fixed-window counter in the cache: API rate limits per token, and throttles on what
anyone may ask for that costs us (a sign-up's password hash, a reset email)."""

from __future__ import annotations

import logging
import time

from django.core.cache import cache

logger = logging.getLogger(__name__)


def window_count(bucket: str, *, window_seconds: int, now: float | None = None) -> int:
    """Count one more use of `bucket` in the current clock window; return the count so far.
    Atomic in Redis and within one process's local-memory cache."""
    window = int((time.time() if now is None else now) // window_seconds)
    key = f"count:{bucket}:{window}"
    cache.add(key, 0, timeout=window_seconds * 2)
    try:
        return cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=window_seconds * 2)
        return 1


def throttle_allows(
    bucket: str, *, limit: int, window_seconds: int, uncounted: bool = True
) -> bool:
    """Count one more use of `bucket`; False once `limit` uses fall in the current window.
    If the cache (Redis) cannot count, the answer is `uncounted` and the failure logged: by
    default the use is allowed, as a throttle is a brake on abuse and must not take sign-up
    or password reset down with Redis; what is only a courtesy may pass False."""
    try:
        count = window_count(f"throttle:{bucket}", window_seconds=window_seconds)
    except Exception:
        logger.warning("throttle %s not counted: the cache did not answer", bucket.split(":")[0])
        return uncounted
    return count <= limit
