"""Account menu → Sessions: where you are signed in."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.decorators import login_required
from accounts.http import AuthenticatedRequest
from accounts.sessions import session_end, sessions_end_others, sessions_of
from core.client_ip import client_ip
from core.forms import row_id


@login_required
@require_http_methods(["GET", "POST"])
def account_sessions(request: AuthenticatedRequest) -> HttpResponse:
    """Where you are signed in; sign out any other session, or all of them at once."""
    current = request.session.session_key
    if request.method == "POST":
        ip = client_ip(request)
        if "session" in request.POST:
            # The buttons send ASCII digits alone; int() would also read "٣", "²" and " 7 ".
            session_id = row_id(request.POST["session"]) or 0
            if session_end(user=request.user, session_id=session_id, ip=ip):
                messages.success(request, "That session is signed out.")
            else:
                messages.info(request, "That session had already ended.")
        else:
            ended = sessions_end_others(user=request.user, current_key=current, ip=ip)
            messages.success(
                request, f"Signed out everywhere else ({ended} session{'s' if ended != 1 else ''})."
            )
        return redirect("accounts:account_sessions")
    rows = sessions_of(request.user, current_key=current)
    return render(request, "accounts/sessions.html", {"rows": rows})
