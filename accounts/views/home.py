"""The site's root: the project this session last worked on, or the sign-in page."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET

from accounts.decorators import CURRENT_PROJECT_SESSION_KEY
from accounts.models import Membership
from core.http import HtmxHttpRequest


@require_GET
def home(request: HtmxHttpRequest) -> HttpResponse:
    """Signed in: the project last worked on. Signed out: the sign-in page."""
    if not request.user.is_authenticated:
        return redirect("accounts:login")
    # The project this session last worked on, if the user is still in it; otherwise the
    # one they have been in longest, which is their own first one: never one that someone
    # else added them to later, whatever its name.
    current = request.session.get(CURRENT_PROJECT_SESSION_KEY)
    membership = (
        Membership.objects.for_user(request.user)
        .select_related("project")
        .current_or_oldest(current if isinstance(current, int) else None)
    )
    if membership is None:
        return redirect("accounts:project_create")
    return redirect("overview:project_overview", slug=membership.project.slug)
