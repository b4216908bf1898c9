"""`manage.py check --deploy`: what production needs for the API's shared state."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register


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
