"""System checks of the scheduler's settings, run when `run_scheduler` (or any command
that checks) starts: a value the job would refuse on every run stops the start instead."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

from usage.retention import MIN_KEEP, parse_age


@register()
def usage_retention_is_an_age_prune_usage_takes(
    app_configs: Any = None, **kwargs: Any
) -> list[Error]:
    """The scheduler runs `prune_usage --older-than USAGE_RETENTION` daily. A value it
    refuses (not an age, or under the detector's 7 days, which needs --force) failed
    every night, noted only on the job's row, while the log grew without end."""
    try:
        age = parse_age(settings.USAGE_RETENTION)
    except ValueError as error:
        problem = str(error)
    else:
        if age >= MIN_KEEP:
            return []
        problem = (
            f"{settings.USAGE_RETENTION!r} keeps less than {MIN_KEEP.days} days, which "
            "prune_usage refuses without --force (the detector's baseline)."
        )
    return [
        Error(
            f"USAGE_RETENTION: {problem}",
            hint="Set USAGE_RETENTION to whole days or hours of at least 7 days, e.g. 90d.",
            id="scheduler.E001",
        )
    ]
