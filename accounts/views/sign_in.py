"""Signing in (a person with a second factor is asked for it before being signed in)
and signing out."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.shortcuts import redirect, render

from accounts.forms import SignInForm
from accounts.middleware import next_without_tokens
from accounts.two_factor import has_two_factor
from accounts.views.two_factor import second_step_begin


class SignInView(auth_views.LoginView):
    """Django's sign-in, with our form: it rotates the session key on success. A person
    with a second factor is asked for a code before being signed in."""

    form_class = SignInForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def get_redirect_url(self) -> str:  # type: ignore[override]  # the stubs add `request`
        """`next`, as Django checks it, unless it is the sign-in page itself: anyone can
        send a signed-in person that link, and Django's view raises ValueError (a
        redirect loop, a 500) for it. Then home, as without one. The page writes `next`
        into its form and its links and goes there once signed in: never with a token
        (a hand-made link's; ours never carry one, accounts.middleware.first_that_fits)."""
        url = next_without_tokens(super().get_redirect_url())
        return "" if url and urlsplit(url).path == self.request.path else url

    def form_valid(self, form: SignInForm) -> HttpResponse:  # type: ignore[override]
        user = form.get_user()
        if has_two_factor(user):
            backend = str(getattr(user, "backend", ""))  # set by authenticate()
            return second_step_begin(self.request, user, backend, self.get_success_url())
        return super().form_valid(form)


class SignOutView(auth_views.LogoutView):
    """Sign out by POST, as in Django. Opened as a page (typed, bookmarked), it asks
    first, as GitHub's does: a link must not sign anyone out, and a blank 405 says
    nothing."""

    http_method_names = ["get", "head", "post", "options"]

    def get(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not request.user.is_authenticated:
            return redirect("accounts:login")
        return render(request, "accounts/logout_confirm.html")

    def post(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You are signed out.")
        return response
