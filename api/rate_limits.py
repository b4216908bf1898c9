"""Per-token rate limits: API_RATE_LIMIT_PER_MINUTE calls in each clock minute.

Counted in Django's cache: with REDIS_URL every worker shares the count; without it each
process counts alone (the local-memory cache), which is fine for one process and lax for
several. 0 turns limits off. (The benchmark keeps them on, at a limit it never reaches, so
that their cost is part of the path it measures.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings

from api import errors
from api.authentication import Caller
from core.counters import window_count

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class RateLimitState:
    limit: int
    remaining: int
    reset: int  # epoch seconds when the window ends

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


def _token_id(caller: Caller) -> str:
    if caller.client_token is not None:
        return f"ct:{caller.client_token.pk}"
    if caller.personal_token is not None:
        return f"pat:{caller.personal_token.pk}"
    assert caller.api_key is not None
    return f"sk:{caller.api_key.pk}"


def rate_limit_check(caller: Caller) -> RateLimitState | None:
    """Count this call against the caller's token; raise 429 once the minute is used up."""
    limit = settings.API_RATE_LIMIT_PER_MINUTE
    if limit <= 0:
        return None
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    count = window_count(f"ratelimit:{_token_id(caller)}", window_seconds=WINDOW_SECONDS, now=now)
    reset = (window + 1) * WINDOW_SECONDS
    state = RateLimitState(limit=limit, remaining=max(0, limit - count), reset=reset)
    if count > limit:
        retry_after = max(1, int(reset - now) + 1)
        raise errors.ApiError(
            429,
            "rate_limit_exceeded",
            f"This token made more than {limit} calls this minute. Retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after), **state.headers()},
        )
    return state
