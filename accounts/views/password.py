"""The password pages: changing it, asking for a reset link, and setting a new one
from that link."""

from __future__ import annotations

from functools import partial

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.db import transaction
from django.http import HttpResponseRedirect
from django.urls import reverse, reverse_lazy
from django.utils.decorators import method_decorator
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.generic import FormView

from accounts.decorators import login_required
from accounts.email_verification import email_confirmed_by_reset, send_no_account
from accounts.forms import ChangePasswordForm, NewPasswordForm, ResetRequestForm
from accounts.models import User
from accounts.security_notices import security_notice_send
from accounts.sessions import session_rekeyed, sessions_end_others
from audit.log import audit_record
from core.after_answer import after_answer
from core.client_ip import client_ip
from core.counters import throttle_allows
from core.mail import inbox
from core.networks import address_block

RESETS_PER_EMAIL_PER_HOUR = 3
RESETS_PER_IP_PER_HOUR = 20
# "No account uses this address" mails, all addresses together: they go to whoever an
# asker names, so past this (or with no counter to tell) the page reads the same and
# none goes.
NO_ACCOUNT_MAILS_PER_HOUR = 200


class PasswordChangeView(auth_views.PasswordChangeView):
    """Change password. Django's session hash check then signs out every other session."""

    template_name = "accounts/password_change.html"
    form_class = ChangePasswordForm
    success_url = reverse_lazy("accounts:password_change")

    # Django's dispatch() has its own login_required, which turned a signed-out visit with
    # a query too long to keep into a 400 (accounts.decorators.login_required): ours asks
    # first, so Django's only ever sees someone signed in.
    @method_decorator(login_required)
    def dispatch(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return super().dispatch(*args, **kwargs)

    def form_valid(self, form):  # type: ignore[no-untyped-def]
        old_key = self.request.session.session_key
        with transaction.atomic():
            response = super().form_valid(form)  # gives this browser a new session key
            session_rekeyed(old_key, self.request.session.session_key)
            audit_record(
                action="user.password_changed",
                actor=form.user,
                target=form.user,
                ip=client_ip(self.request),
            )
            security_notice_send(
                user=form.user, action="user.password_changed", ip=client_ip(self.request)
            )
            # Their sessions are dead already (the password hash changed); their rows go
            # too, so the Sessions page lists only what can still be used.
            sessions_end_others(
                user=form.user,
                current_key=self.request.session.session_key,
                ip=client_ip(self.request),
            )
        messages.success(
            self.request, "Password changed. Your other signed-in sessions have been signed out."
        )
        return response


class PasswordResetView(auth_views.PasswordResetView):
    """Ask for a reset link. The answer is the same whether or not the email has an account."""

    template_name = "accounts/password_reset.html"
    form_class = ResetRequestForm
    email_template_name = "accounts/email/password_reset.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")

    def form_valid(self, form):  # type: ignore[no-untyped-def]
        # Past the limits, the page reads the same but no email goes: a reset form must not
        # become a way to flood someone's inbox. They count the inbox (core.mail.inbox: a
        # `+tag`, a quoted local part, a domain spelled in other letters reach the same
        # one) and the asker's network. The address is the one an account would be kept
        # under (ResetRequestForm): a variant spelling reaches its account.
        email = form.cleaned_data["email"]
        if not (
            throttle_allows(
                f"reset-email:{inbox(email)}", limit=RESETS_PER_EMAIL_PER_HOUR, window_seconds=3600
            )
            and throttle_allows(
                f"reset-ip:{address_block(client_ip(self.request))}",
                limit=RESETS_PER_IP_PER_HOUR,
                window_seconds=3600,
            )
        ):
            return HttpResponseRedirect(self.get_success_url())
        # Which mail goes (a link, word that no account uses the address, or none past the
        # hour's "no account" cap) is decided after the answer (core.after_answer): the
        # account's lookup, that cap's count (a Redis that stalls took its timeout once
        # more for an address without an account) and the link's making are all there.
        after_answer(partial(self._link_or_word, form, email), what="password reset")
        return HttpResponseRedirect(self.get_success_url())

    def _link_or_word(self, form: ResetRequestForm, email: str) -> None:
        """After the answer: the link to the account's address, or word that there is
        none while the hour's count of those allows."""
        if not any(form.get_users(email)):
            if throttle_allows(
                "reset-no-account",
                limit=NO_ACCOUNT_MAILS_PER_HOUR,
                window_seconds=3600,
                uncounted=False,
            ):
                send_no_account(email)
            return
        # The link goes to the dashboard's configured address, as every other mail's does,
        # never to whatever Host the request named.
        self.extra_email_context = {"dashboard_url": settings.DASHBOARD_URL.rstrip("/")}
        super().form_valid(form)


# Where a reset link's token waits for its set-password page (see below).
RESET_TOKEN_COOKIE = "password_reset"


def _reset_token_cookie() -> str:
    """__Secure- wherever cookies are Secure, as the session cookie is __Host- (a cookie
    for one page cannot be __Host-, which is for the whole site)."""
    return (
        f"__Secure-{RESET_TOKEN_COOKIE}" if settings.SESSION_COOKIE_SECURE else RESET_TOKEN_COOKIE
    )


@method_decorator([login_not_required, sensitive_post_parameters(), never_cache], name="dispatch")
class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Django's, save where the link's token waits once the link is opened. Django keeps
    it in the session, to send the browser on to an address without it (so that no
    Referer or history carries it): each opening by a browser with no cookie stored a
    session row, kept 14 days, and whoever holds a link (anyone can sign up and ask for
    one) could open it as often as they liked. It waits in a cookie of this browser
    instead, sent only to that page, for as long as the token is good; nothing is stored.
    The checks are Django's: the token from the cookie, for this uidb64."""

    template_name = "accounts/password_reset_confirm.html"
    form_class = NewPasswordForm
    success_url = reverse_lazy("accounts:login")
    post_reset_login = False

    def dispatch(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.validlink = False
        self.user = self.get_user(kwargs["uidb64"])
        token = kwargs["token"]
        if self.user is not None:
            if token == self.reset_url_token:
                kept = request.COOKIES.get(_reset_token_cookie())
                if self.token_generator.check_token(self.user, kept):
                    self.validlink = True
                    return FormView.dispatch(self, request, *args, **kwargs)
            elif self.token_generator.check_token(self.user, token):
                page = self._set_password_page(self.user)
                response = HttpResponseRedirect(page)
                response.set_cookie(
                    _reset_token_cookie(),
                    token,
                    max_age=settings.PASSWORD_RESET_TIMEOUT,
                    path=page,
                    secure=settings.SESSION_COOKIE_SECURE,
                    httponly=True,
                    # Lax: the link is opened from a mail, another site.
                    samesite="Lax",
                )
                return response
        return self.render_to_response(self.get_context_data())

    def _set_password_page(self, user: User) -> str:
        """The account's set-password page as we spell it: the cookie's path, which the
        request's spelling must not write. Django sends the browser on to the request's
        path with the token replaced, but base64 decoding skips what is not base64 and
        stops at padding, so `MQ==; Domain=…` (or a NUL) opens the page of account 1 too,
        and would have become the cookie's attributes."""
        uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
        return reverse(
            "accounts:password_reset_confirm",
            kwargs={"uidb64": uidb64, "token": self.reset_url_token},
        )

    def form_valid(self, form):  # type: ignore[no-untyped-def]
        with transaction.atomic():
            # The link was checked in dispatch(), but two posts of it at once both passed
            # there: both set a password and mailed a notice. Checked again on the locked
            # row: the first to take it sets the password, which ends the link for the other.
            user = User.objects.select_for_update().get(pk=form.user.pk)
            kept = self.request.COOKIES.get(_reset_token_cookie())
            if not self.token_generator.check_token(user, kept):
                self.validlink = False
                return self.render_to_response(self.get_context_data())
            form.user = user
            form.save()
            # Django's own form_valid would take the token out of the session.
            response = FormView.form_valid(self, form)
            response.delete_cookie(
                _reset_token_cookie(), path=self._set_password_page(form.user), samesite="Lax"
            )
            audit_record(
                action="user.password_changed",
                actor=form.user,
                target=form.user,
                ip=client_ip(self.request),
                metadata={"via": "reset link"},
            )
            security_notice_send(
                user=form.user,
                action="user.password_changed",
                ip=client_ip(self.request),
                detail="with a reset link",
            )
            # Whoever held the old password is signed out everywhere, listed rows included.
            sessions_end_others(user=form.user, current_key=None, ip=client_ip(self.request))
            if form.user.email_verified_at is None:
                # The reset link reached the mailbox: the address is the owner's. A second
                # factor set up before that was set up by whoever signed up with it.
                email_confirmed_by_reset(form.user, ip=client_ip(self.request))
        messages.success(self.request, "Your password is reset. Sign in with the new one.")
        return response
