"""A small fixed-window counter in the cache, for actions that cost us (a password hash,
an email) and that anyone can ask for: sign-up and password reset."""

from __future__ import annotations

import time

from django.core.cache import cache


def throttle_allows(bucket: str, *, limit: int, window_seconds: int) -> bool:
    """Count one more use of `bucket`; False once `limit` uses fall in the current window."""
    window = int(time.time() // window_seconds)
    key = f"throttle:{bucket}:{window}"
    cache.add(key, 0, timeout=window_seconds * 2)
    try:
        used = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=window_seconds * 2)
        used = 1
    return used <= limit
