"""The person's email preferences, under their account."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.decorators import login_required, verified_email_required_to_change
from accounts.http import AuthenticatedRequest
from accounts.models import Membership
from accounts.sudo import sudo_required_to_change
from core.client_ip import client_ip
from notifications.forms import NotificationPreferencesForm
from notifications.services import notification_preferences_set

TEMPLATE = "notifications/preferences.html"


def _memberships(request: AuthenticatedRequest) -> list[Membership]:
    return list(
        Membership.objects.filter(user=request.user)
        .select_related("project", "notification_preference")
        .order_by("project__name", "project_id")
    )


@require_http_methods(["GET", "POST"])
@login_required
@verified_email_required_to_change
@sudo_required_to_change
def notification_preferences(request: AuthenticatedRequest) -> HttpResponse:
    """Which emails each of the person's projects sends them. A project they left since
    the page was shown is not in the form's memberships, and its boxes are ignored.
    A change asks for sudo, as the alert rules do: whoever holds a stolen session could
    otherwise turn off its victim's alert emails first, and use their keys unheard."""
    memberships = _memberships(request)
    if request.method == "GET":
        form = NotificationPreferencesForm(memberships=memberships)
        return render(request, TEMPLATE, {"form": form})
    form = NotificationPreferencesForm(request.POST, memberships=memberships)
    if not form.is_valid():  # checkboxes: only a tampered request gets here
        return render(request, TEMPLATE, {"form": form}, status=422)
    changed = notification_preferences_set(
        user=request.user, choices=form.choices(), ip=client_ip(request)
    )
    if changed:
        messages.success(request, "Email preferences saved.")
    else:
        messages.info(request, "Your email preferences are as they were.")
    return redirect("notifications:preferences")
