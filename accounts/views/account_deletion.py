"""Deleting one's own account."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.decorators import login_required
from accounts.forms import AccountDeleteForm
from accounts.http import AuthenticatedRequest
from accounts.services import AccountDeletionRefused, account_delete, account_deletion_plan
from accounts.sudo import sudo_required_to_change
from core.client_ip import client_ip


@require_http_methods(["GET", "POST"])
@login_required
@sudo_required_to_change
def account_delete_view(request: AuthenticatedRequest) -> HttpResponse:
    """Delete one's own account (account_delete), once the address is typed again: the
    page first says which projects go with it, which it leaves, and which must be handed
    over first."""
    form = AccountDeleteForm(request.POST or None, user=request.user)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                account_delete(user=request.user, ip=client_ip(request))
            except AccountDeletionRefused as refused:
                form.add_error(None, str(refused))
            else:
                logout(request)
                messages.success(request, "Your account is deleted. A last email says so.")
                return redirect("accounts:login")
        status = 422
    deleted, left, blocking = account_deletion_plan(request.user)
    context = {"form": form, "deleted": deleted, "left": left, "blocking": blocking}
    return render(request, "accounts/account_delete.html", context, status=status)
