"""Template context for every signed-in page: the person's tokens that expire within a
week, for the banner. Lazy: a fragment that does not show the banner costs no query."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from apikeys.reminders import personal_tokens_expiring_soon


def token_reminders(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "expiring_tokens": SimpleLazyObject(lambda: list(personal_tokens_expiring_soon(user)[:5]))
    }
