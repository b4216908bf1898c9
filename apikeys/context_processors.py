"""Template context for every signed-in page: personal tokens that expire within a week,
and on project pages the number of open alerts (for the navigation)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from apikeys.models import Flag
from apikeys.reminders import personal_tokens_expiring_soon


def token_reminders(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    context: dict[str, Any] = {"expiring_tokens": list(personal_tokens_expiring_soon(user)[:5])}
    project = getattr(request, "project", None)
    if project is not None:
        context["open_flag_count"] = Flag.objects.for_project(project).open().count()
    return context
