"""The page an invitation's link opens: who invited you to what, and accepting it."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.decorators import CURRENT_PROJECT_SESSION_KEY
from accounts.invitations import InvitationError, invitation_accept, invitation_for_token
from core.client_ip import client_ip
from core.http import HtmxHttpRequest
from core.text_direction import text_isolated


@require_http_methods(["GET", "POST"])
def invitation_page(request: HtmxHttpRequest, token: str) -> HttpResponse:
    """An invitation's link. Signed out: who invited you to what, and sign in or sign up
    (both come back here). Signed in: accept with a button (a GET never accepts: mail
    scanners open links)."""
    invitation = invitation_for_token(token)
    context: dict[str, object] = {"invitation": invitation, "token": token, "error": ""}
    if invitation is None:
        context["error"] = "This invitation link is not valid. Check that it was copied whole."
        return render(request, "accounts/invitation.html", context, status=404)
    if not invitation.is_pending:
        context["error"] = (
            "This invitation was accepted already."
            if invitation.accepted_at
            else "This invitation has expired or was withdrawn. Ask the project’s owner for "
            "a new one."
        )
        return render(request, "accounts/invitation.html", context, status=410)
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        try:
            membership = invitation_accept(
                invitation=invitation, user=request.user, ip=client_ip(request)
            )
        except InvitationError as error:
            context["error"] = str(error)
            return render(request, "accounts/invitation.html", context, status=409)
        request.session[CURRENT_PROJECT_SESSION_KEY] = membership.project_id
        messages.success(request, f"You joined {text_isolated(membership.project.name)}.")
        return redirect("overview:project_overview", slug=membership.project.slug)
    return render(request, "accounts/invitation.html", context)
