"""Per-token rate limits: API_RATE_LIMIT_PER_MINUTE calls in each clock minute.

With a shared store the count is the one api.callers.admit() took in Redis, in the same
round trip as the rest of the call's needs: every worker of every instance shares it, and
N callers at once on a limit of N/2 get N/2 through. If Redis cannot be reached the call
is not counted (limits fail open; the store logs and counts its failures) — unlike
authentication, which then asks the database. Without a shared store each process counts
alone in memory, which is exact for one process and lax for several (`check --deploy`
warns about that in production). 0 turns limits off.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings

from api import errors
from api.callers import WINDOW_SECONDS
from core.counters import window_count
from core.shared_store import shared_store


@dataclass(frozen=True)
class RateLimitState:
    """Where one call leaves its token's minute: the X-RateLimit-* headers the frame adds to
    its answer (api/endpoint.py), and the 429 it raises instead once `exceeded`."""

    limit: int
    remaining: int
    reset: int  # epoch seconds when the window ends
    exceeded: bool

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }

    def refusal(self, now: float) -> errors.ApiError:
        retry_after = max(1, int(self.reset - now) + 1)
        return errors.ApiError(
            429,
            "rate_limit_exceeded",
            f"This token made more than {self.limit} calls this minute. Retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after), **self.headers()},
        )


def rate_limit_state(*, token: str, calls: int | None) -> RateLimitState | None:
    """Where this call leaves its token's limit. `calls`: the count the shared store took
    (None: it took none). None when limits are off or the call could not be counted."""
    limit = settings.API_RATE_LIMIT_PER_MINUTE
    if limit <= 0:
        return None
    now = time.time()
    if calls is None:
        if shared_store() is not None:
            return None  # the store was unreachable: fail open
        calls = window_count(f"ratelimit:{token}", window_seconds=WINDOW_SECONDS, now=now)
    reset = (int(now // WINDOW_SECONDS) + 1) * WINDOW_SECONDS
    return RateLimitState(
        limit=limit, remaining=max(0, limit - calls), reset=reset, exceeded=calls > limit
    )
