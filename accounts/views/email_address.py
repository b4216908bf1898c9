"""The pages of accounts/email_verification.py: a link's confirmation, sending the link
again, and changing the account's address."""

from __future__ import annotations

from functools import partial
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.decorators import login_required
from accounts.email_verification import (
    CHANGE_REQUESTED,
    VerificationError,
    confirm,
    inbox_may_be_mailed,
    read_token,
    send_already_registered,
    send_verification,
)
from accounts.forms import AccountEmailField
from accounts.http import AuthenticatedRequest
from accounts.models import User
from accounts.sudo import sudo_required
from audit.log import audit_record
from core.after_answer import after_answer
from core.client_ip import client_ip
from core.counters import throttle_allows
from core.http import local_path
from core.mail import delivery_address

LINKS_PER_HOUR = 3


@require_http_methods(["GET", "POST"])
def email_verify(request: HttpRequest, token: str) -> HttpResponse:
    """A GET shows what the link confirms and a button (mail scanners open links); the
    POST confirms it."""
    try:
        user, email = read_token(token)
    except VerificationError as error:
        return render(request, "accounts/email_verify.html", {"error": str(error)}, status=400)
    changing = email != user.email
    # Signed in as someone else, the link changes the account it was sent for, not theirs:
    # said so, without naming that account (the link's holder may not know it).
    signed_in_as = request.user.email if request.user.is_authenticated else None
    other = signed_in_as is not None and request.user.pk != user.pk
    if request.method == "POST":
        try:
            confirm(token, ip=client_ip(request))
        except VerificationError as error:
            refused = {"error": str(error)}
            return render(request, "accounts/email_verify.html", refused, status=409)
        if other:
            said = (
                f"The account the link was for now uses {email}."
                if changing
                else f"{email} is confirmed for the account the link was for."
            )
            said += f" You are still signed in as {signed_in_as}."
        elif changing:
            said = f"Your account's email is now {email}."
        else:
            said = "Your email is confirmed."
        messages.success(request, said)
        return redirect("home" if request.user.is_authenticated else "accounts:login")
    context: dict[str, object] = {
        "email": email,
        "changing": changing,
        "token": token,
        "other": other,
    }
    return render(request, "accounts/email_verify.html", context)


@require_POST
@login_required
def email_verify_resend(request: AuthenticatedRequest) -> HttpResponse:
    if request.user.email_verified:
        return redirect("home")
    if throttle_allows(f"verify-mail:{request.user.pk}", limit=LINKS_PER_HOUR, window_seconds=3600):
        send_verification(request.user)
    messages.info(request, f"We sent a new link to {request.user.email}. It works for 3 days.")
    back = request.POST.get("back") or ""
    return redirect(local_path(request, back) or "home")


def _link_or_word(*, user: User, email: str, asked: int) -> None:
    """After an address change's answer: the link to the new address (for the request
    whose audit event is `asked`), or, if an account has it, word to that account's
    owner."""
    if User.objects.with_address(email).exists():
        send_already_registered(email)
    else:
        send_verification(user, email, asked=asked)


class EmailChangeForm(forms.Form):
    """The address an account moves to, in the one spelling of its mailbox (as sign-up
    keeps it): whether another account has it is never said here."""

    email = AccountEmailField(
        label="New email address",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_email(self) -> str:
        email = str(self.cleaned_data["email"])
        if email == delivery_address(self.user.email):
            raise forms.ValidationError("That is your address already.", code="same")
        return email


@require_http_methods(["GET", "POST"])
@login_required
@sudo_required
def account_email(request: AuthenticatedRequest) -> HttpResponse:
    """Move the account to another address: a link goes to the new one, which confirms
    it; the old one is told once it is done. Taken or not, the answer is the same."""
    form = EmailChangeForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        # First: the link names it, and it ends every link asked for before.
        asked = audit_record(
            action=CHANGE_REQUESTED,
            actor=request.user,
            target=request.user,
            ip=client_ip(request),
        )
        if throttle_allows(
            f"email-change:{request.user.pk}", limit=LINKS_PER_HOUR, window_seconds=3600
        ) and inbox_may_be_mailed(email):
            # Which mail goes is decided after the answer (core.after_answer): the new
            # address's link is signed for a free address only, and that work was the
            # answer's difference.
            after_answer(
                partial(_link_or_word, user=request.user, email=email, asked=asked.pk),
                what="address change",
            )
        return render(request, "accounts/account_email.html", {"form": None, "sent_to": email})
    status = 422 if request.method == "POST" else 200
    return render(request, "accounts/account_email.html", {"form": form}, status=status)
