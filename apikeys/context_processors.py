"""Template context for every signed-in page: the person's tokens that expire within a
week, for the banner. Lazy: a fragment that does not show the banner costs no query.

A token made (or regenerated) to live a week or less was made short on purpose: it is not
announced on every page from the day it is made, only on its last day."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import F, Q, QuerySet
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from apikeys.models import PersonalAccessToken
from apikeys.reminders import REMIND_BEFORE, personal_tokens_expiring_soon


def token_reminders(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"expiring_tokens": SimpleLazyObject(lambda: list(_worth_a_banner(user)[:5]))}


def _worth_a_banner(user: Any) -> QuerySet[PersonalAccessToken]:
    last_day = timezone.now() + timedelta(days=1)
    # A lifetime runs from the token's last regenerate, if any (its lifetime_from).
    return (
        personal_tokens_expiring_soon(user)
        .alias(given_at=Coalesce("regenerated_at", "created_at"))
        .filter(Q(given_at__lt=F("expires_at") - REMIND_BEFORE) | Q(expires_at__lte=last_day))
    )
