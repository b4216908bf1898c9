"""Sign-up: a new account, answered alike whether or not the address has one; at
once for the invitee whose invitation's link brought them."""

from __future__ import annotations

from functools import partial

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.hashers import make_password
from django.db import IntegrityError
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from accounts.email_verification import (
    inbox_may_be_mailed,
    send_already_registered,
    send_verification,
)
from accounts.forms import SignUpForm
from accounts.invitations import invitation_for_token
from accounts.middleware import next_without_tokens
from accounts.models import Invitation, User
from accounts.services import user_sign_up
from core.after_answer import after_answer
from core.client_ip import client_ip
from core.counters import throttle_allows
from core.http import HtmxHttpRequest, local_path
from core.mail import delivery_address
from core.networks import address_block

SIGNUPS_PER_HOUR = 10


def _safe_next(request: HtmxHttpRequest) -> str:
    """Where to go after signing up (an invitation's link): a path of this site only,
    never with a token in it (accounts.middleware.next_without_tokens)."""
    asked = request.POST.get("next") or request.GET.get("next") or ""
    return next_without_tokens(local_path(request, asked))


@require_http_methods(["GET", "POST"])
def signup(request: HtmxHttpRequest) -> HttpResponse:
    """A new account. The answer is the same whether or not the email has an account
    ("check your inbox"): a new one gets a link to confirm it, an existing one's owner is
    told someone tried. Only a sign-up that came from an invitation's link for this very
    address (which proves the mailbox) is signed in at once."""
    next_url = _safe_next(request)
    if request.user.is_authenticated:
        return HttpResponseRedirect(next_url or reverse("home"))
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and not throttle_allows(
        f"signup:{address_block(client_ip(request))}", limit=SIGNUPS_PER_HOUR, window_seconds=3600
    ):
        # Checked before the form: its password validation and Argon2 hash are the cost.
        form = SignUpForm(request.POST)
        form.errors.clear()
        form.add_error(
            None,
            "Too many accounts were created from your network in the last hour. Try again later.",
        )
        return render(request, "accounts/signup.html", {"form": form, "next": next_url}, status=429)
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        # Whether the address has an account is asked on the request only for the invitee
        # whose link names it (the link proved the inbox): for anyone else, after the
        # answer. The lookup (iexact: a scan of the users, which ends early at a match) took
        # 27 ms less for an early account than for a new address among 100,000 users. The
        # link is looked up for every address alike.
        invitation = _invitation_of(next_url)
        invited_here = (
            invitation is not None
            and delivery_address(invitation.email) == email
            and not User.objects.with_address(email).exists()
        )
        # Signing up from an invitation's link for this very address mails nothing (the
        # link proved the inbox): only the others count, so a stranger who used up the
        # count cannot turn the invitee away.
        if not invited_here and not inbox_may_be_mailed(email):
            # The same answer and work as for any address, but nothing made and no mail:
            # a sign-up form must not become a way to flood someone's inbox.
            make_password(form.cleaned_data["password1"])
            return render(request, "accounts/signup_sent.html", {"email": email})
        if invited_here:
            # The link proved the inbox: signed in at once, to the invitation.
            try:
                user = user_sign_up(
                    email=email,
                    password=form.cleaned_data["password1"],
                    name=form.cleaned_data.get("name", ""),
                    ip=client_ip(request),
                    verified=True,
                )
            except IntegrityError:
                # Another sign-up for this address was written since the check above: the
                # same answer as for any taken address, not a 500.
                if not User.objects.with_address(email).exists():
                    raise
                send_already_registered(email)
                return render(request, "accounts/signup_sent.html", {"email": email})
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, "Welcome to Reminix. Your first project is ready.")
            return HttpResponseRedirect(next_url)
        # The same work on the request either way (the hash); whether the address has an
        # account, and the account or the word to the one there is, after the answer
        # (core.after_answer): writing an account took long enough to tell which have one.
        after_answer(
            partial(
                _sign_up_or_tell,
                email=email,
                password_hash=make_password(form.cleaned_data["password1"]),
                name=form.cleaned_data.get("name", ""),
                ip=client_ip(request),
            ),
            what="sign-up",
        )
        return render(request, "accounts/signup_sent.html", {"email": email})
    return render(request, "accounts/signup.html", {"form": form, "next": next_url})


def _sign_up_or_tell(*, email: str, password_hash: str, name: str, ip: str | None) -> None:
    """A sign-up's work after its answer: the account and its confirmation link, or, for
    an address that has an account (before, or since the check: another sign-up won the
    race), the word to its owner."""
    if not User.objects.with_address(email).exists():
        try:
            user = user_sign_up(email=email, password_hash=password_hash, name=name, ip=ip)
        except IntegrityError:
            if not User.objects.with_address(email).exists():
                raise
        else:
            send_verification(user)
            return
    send_already_registered(email)


def _invitation_of(next_url: str) -> Invitation | None:
    """The pending invitation a sign-up's `next` leads back to (its link), if any."""
    prefix = "/invitations/"
    if not next_url.startswith(prefix):
        return None
    token = next_url[len(prefix) :].strip("/")
    invitation = invitation_for_token(token)
    return invitation if invitation is not None and invitation.is_pending else None
