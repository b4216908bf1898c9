"""Template context every dashboard page needs: the project switcher's list."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts.models import Project


def projects(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "user_projects": Project.objects.for_user(user).only("name", "slug"),
        "project": getattr(request, "project", None),
        "membership": getattr(request, "membership", None),
    }
