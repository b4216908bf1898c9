"""Template context for project pages: the number of open alerts, for the navigation.
Lazy: a fragment that does not show the navigation costs no query."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from alerts.models import Flag


def open_alerts(request: HttpRequest) -> dict[str, Any]:
    project = getattr(request, "project", None)
    user = getattr(request, "user", None)
    if project is None or user is None or not user.is_authenticated:
        return {}
    return {
        "open_flag_count": SimpleLazyObject(
            lambda: Flag.objects.for_project(project).open().count()
        )
    }
