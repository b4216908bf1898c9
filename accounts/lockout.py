"""How django-axes counts sign-in failures and what a locked-out person sees."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def lockout_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """Count failures per email however it is capitalised, as accounts store it lowercase."""
    raw = (credentials or {}).get("username") or request.POST.get("username", "")
    return str(raw).strip().lower()


def locked_out(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """The sign-in page again, with a message that reads the same whether or not the email
    has an account."""
    from accounts.forms import SignInForm

    form = SignInForm(request, data=None)
    response = render(
        request,
        "accounts/login.html",
        {"form": form, "locked_out": True},
        status=429,
    )
    response["Retry-After"] = "900"
    return response
