"""Template context for every signed-in page: personal tokens that expire within a week."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from apikeys.reminders import personal_tokens_expiring_soon


def token_reminders(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"expiring_tokens": list(personal_tokens_expiring_soon(user)[:5])}
