"""`manage.py check --deploy`: what production needs for the API's shared state."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register

from core.shared_store import shared_store


@register(Tags.security, deploy=True)
def rate_limits_are_shared(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Like django-axes' W001: without REDIS_URL every worker counts a token's calls on its
    own, so N workers let N times the limit through, and each keeps its own usage buffer."""
    if settings.REDIS_URL or settings.API_RATE_LIMIT_PER_MINUTE <= 0:
        return []
    return [
        Warning(
            "API rate limits are counted per process: without REDIS_URL each worker (and "
            "each instance) lets a token make the whole limit's calls.",
            hint="Set REDIS_URL (e.g. redis://127.0.0.1:6379/0), or API_RATE_LIMIT_PER_MINUTE=0 "
            "if another layer limits calls.",
            id="api.W001",
        )
    ]


@register(Tags.security, deploy=True)
def change_markers_are_kept(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Revocation is exact while Redis keeps every change marker for its 30 s: a Redis
    that evicts keys when full may drop one, and a worker's copy of a revoked key could
    then answer for up to CACHE_SECONDS. (A store that lost all its keys is caught by
    the epoch: api/callers.py.) Where Redis will not say (CONFIG is often disabled on
    managed services, or it is down), nothing is reported."""
    store = shared_store()
    if store is None:
        return []
    try:
        policy, memory = store.round_trip(
            ("CONFIG", "GET", "maxmemory-policy"), ("CONFIG", "GET", "maxmemory")
        )
        evicts = not isinstance(policy, Exception) and policy[1] != b"noeviction"
        bounded = not isinstance(memory, Exception) and memory[1] not in (b"0", b"")
    except Exception:  # noqa: BLE001 - a check must not fail the deploy over Redis
        return []
    if not (evicts and bounded):
        return []
    return [
        Warning(
            f"Redis may evict keys when full (maxmemory-policy {policy[1].decode()}): a lost "
            "change marker would let a worker's copy of a revoked token answer for up to "
            "2 seconds.",
            hint="Give the API's Redis maxmemory-policy noeviction (or no maxmemory).",
            id="api.W002",
        )
    ]
