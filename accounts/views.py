"""Sign-up, sign-in, password pages, and the project pages of issue #2: create, overview,
settings and members."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import cast
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required, login_required
from django.contrib.auth.hashers import make_password
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Page, Paginator
from django.db import IntegrityError, transaction
from django.forms import BaseForm
from django.http import HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.decorators import method_decorator
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.generic import FormView

from accounts.decorators import (
    CURRENT_PROJECT_SESSION_KEY,
    project_member_may_leave,
    project_member_required,
    project_owner_required,
    verified_email_required,
)
from accounts.email_verification import (
    email_confirmed_by_reset,
    inbox_may_be_mailed,
    send_already_registered,
    send_no_account,
    send_verification,
)
from accounts.forms import (
    AccountDeleteForm,
    AllowedOriginsForm,
    ChangePasswordForm,
    InvitationForm,
    KeyPolicyForm,
    NewPasswordForm,
    ProjectDeleteForm,
    ProjectForm,
    ResetRequestForm,
    RoleForm,
    SignInForm,
    SignUpForm,
    TwoFactorPolicyForm,
)
from accounts.http import AuthenticatedRequest, ProjectRequest
from accounts.invitations import (
    InvitationError,
    TooManyInvitations,
    invitation_accept,
    invitation_for_token,
    invitation_revoke,
    invitation_send,
)
from accounts.models import Invitation, Membership, User
from accounts.security_notices import security_notice_send
from accounts.services import (
    AccountDeletionRefused,
    MembershipError,
    NotAnOwner,
    PolicyRefused,
    TooManyProjects,
    account_delete,
    account_deletion_plan,
    membership_remove,
    membership_set_role,
    project_create,
    project_delete,
    project_rename,
    project_set_allowed_origins,
    project_set_key_policy,
    project_set_two_factor_policy,
    project_transfer_ownership,
    user_sign_up,
)
from accounts.sessions import session_end, session_rekeyed, sessions_end_others, sessions_of
from accounts.sudo import sudo_required, sudo_required_to_change
from accounts.two_factor import has_two_factor
from accounts.two_factor_views import second_step_begin
from audit.log import audit_record
from core.after_answer import after_answer
from core.client_ip import client_ip
from core.counters import throttle_allows
from core.forms import row_id
from core.htmx import filters_without_secrets, url_with_query, wants_fragment
from core.http import HtmxHttpRequest, local_path
from core.mail import delivery_address, inbox
from core.networks import address_block
from core.redact import holds_secret

SIGNUPS_PER_HOUR = 10
RESETS_PER_EMAIL_PER_HOUR = 3
RESETS_PER_IP_PER_HOUR = 20
# "No account uses this address" mails, all addresses together: they go to whoever an
# asker names, so past this (or with no counter to tell) the page reads the same and
# none goes.
NO_ACCOUNT_MAILS_PER_HOUR = 200


INVITATIONS_PER_HOUR = 30
INVITATIONS_PER_EMAIL_PER_DAY = 5
# Members a page: a project may have MAX_MEMBERS_PER_PROJECT (500), each row with its
# forms; listed all at once, they made a page of a megabyte that took a second to render.
MEMBERS_PAGE_SIZE = 50
MEMBERS_TEMPLATE = "accounts/project_members.html"


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


def _safe_next(request: HtmxHttpRequest) -> str:
    """Where to go after signing up (an invitation's link): a path of this site only."""
    return local_path(request, request.POST.get("next") or request.GET.get("next") or "")


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


class SignInView(auth_views.LoginView):
    """Django's sign-in, with our form: it rotates the session key on success. A person
    with a second factor is asked for a code before being signed in."""

    form_class = SignInForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def get_redirect_url(self) -> str:  # type: ignore[override]  # the stubs add `request`
        """`next`, as Django checks it, unless it is the sign-in page itself: anyone can
        send a signed-in person that link, and Django's view raises ValueError (a
        redirect loop, a 500) for it. Then home, as without one."""
        url = super().get_redirect_url()
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


class PasswordChangeView(auth_views.PasswordChangeView):
    """Change password. Django's session hash check then signs out every other session."""

    template_name = "accounts/password_change.html"
    form_class = ChangePasswordForm
    success_url = reverse_lazy("accounts:password_change")

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


@login_required
@require_http_methods(["GET", "POST"])
def project_create_view(request: AuthenticatedRequest) -> HttpResponse:
    form = ProjectForm(request.POST or None, owner=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            project = project_create(
                name=form.cleaned_data["name"], owner=request.user, ip=client_ip(request)
            )
        except TooManyProjects as full:  # the last place taken since the form's check
            form.add_error("name", str(full))
        else:
            messages.success(request, f"Project “{project.name}” created.")
            return redirect("overview:project_overview", slug=project.slug)
    return render(request, "accounts/project_create.html", {"form": form})


def _origins_initial(request: ProjectRequest) -> dict[str, str]:
    return {"origins": "\n".join(request.project.allowed_origins)}


ONLY_OWNERS_RENAME = "Only a project owner can rename the project."


@require_http_methods(["GET", "POST"])
@project_member_required
def project_settings(request: ProjectRequest) -> HttpResponse:
    """General settings: the project's name and its browser origins. Changes are for owners."""
    form = ProjectForm(request.POST or None, instance=request.project)
    origins_form = AllowedOriginsForm(initial=_origins_initial(request))
    status = 200
    if request.method == "POST":
        if not request.membership.is_owner:
            messages.error(request, ONLY_OWNERS_RENAME)
            return redirect("accounts:project_settings", slug=request.project.slug)
        if form.is_valid():
            try:
                project_rename(
                    project=request.project,
                    name=form.cleaned_data["name"],
                    by=request.user,
                    ip=client_ip(request),
                )
            except NotAnOwner:  # demoted since this request began
                messages.error(request, ONLY_OWNERS_RENAME)
            else:
                messages.success(request, "Project renamed.")
            return redirect("accounts:project_settings", slug=request.project.slug)
        request.project.refresh_from_db(fields=["name"])
        status = 422
    return render(
        request,
        "accounts/project_settings.html",
        _settings_context(request, form=form, origins_form=origins_form),
        status=status,
    )


def _settings_context(request: ProjectRequest, **given: BaseForm) -> dict[str, BaseForm]:
    """The settings page's forms: as they stand, but for those `given` (sent, with their
    errors beside their fields)."""
    return {
        "form": ProjectForm(instance=request.project),
        "origins_form": AllowedOriginsForm(initial=_origins_initial(request)),
        "policy_form": _policy_form(request),
        "delete_form": ProjectDeleteForm(project=request.project),
        **given,
    }


def _policy_form(request: ProjectRequest) -> KeyPolicyForm:
    project = request.project
    return KeyPolicyForm(
        initial={
            "max_key_days": project.max_key_lifetime_days or "",
            "max_pat_days": project.max_pat_lifetime_days or "",
            "leaked_key_action": project.leaked_key_action,
        }
    )


@require_POST
@project_owner_required
@verified_email_required
@sudo_required
def project_key_policy(request: ProjectRequest) -> HttpResponse:
    policy_form = KeyPolicyForm(request.POST)
    if not policy_form.is_valid():
        context = _settings_context(request, policy_form=policy_form)
        return render(request, "accounts/project_settings.html", context, status=422)
    data = policy_form.cleaned_data
    if project_set_key_policy(
        project=request.project,
        max_key_days=data["max_key_days"],
        max_pat_days=data["max_pat_days"],
        leaked_key_action=data["leaked_key_action"],
        by=request.user,
        ip=client_ip(request),
    ):
        messages.success(request, "Key policy saved.")
    else:
        messages.info(request, "The key policy is as it was.")
    return redirect("accounts:project_settings", slug=request.project.slug)


@require_POST
@project_owner_required
@sudo_required
def project_two_factor_policy(request: ProjectRequest) -> HttpResponse:
    form = TwoFactorPolicyForm(request.POST)
    required = form.is_valid() and form.cleaned_data["require_two_factor"]
    try:
        changed = project_set_two_factor_policy(
            project=request.project, required=required, by=request.user, ip=client_ip(request)
        )
    except PolicyRefused as refused:
        form.add_error("require_two_factor", str(refused))
        context = _settings_context(request, two_factor_form=form)
        return render(request, "accounts/project_settings.html", context, status=422)
    if changed:
        messages.success(
            request,
            "Every member now needs two-factor authentication."
            if required
            else "Two-factor authentication is no longer required.",
        )
    return redirect(
        reverse("accounts:project_settings", args=[request.project.slug]) + "#two-factor"
    )


@require_POST
@project_owner_required
@sudo_required
def project_origins(request: ProjectRequest) -> HttpResponse:
    origins_form = AllowedOriginsForm(request.POST)
    if not origins_form.is_valid():
        return render(
            request,
            "accounts/project_settings.html",
            _settings_context(request, origins_form=origins_form),
            status=422,
        )
    project_set_allowed_origins(
        project=request.project,
        origins=origins_form.cleaned_data["origins"],
        by=request.user,
        ip=client_ip(request),
    )
    messages.success(request, "Allowed browser origins saved.")
    return redirect("accounts:project_settings", slug=request.project.slug)


@require_POST
@project_owner_required
@sudo_required
def project_delete_view(request: ProjectRequest) -> HttpResponse:
    """Delete the project for everyone (project_delete), once its name is typed again."""
    delete_form = ProjectDeleteForm(request.POST, project=request.project)
    if not delete_form.is_valid():
        return render(
            request,
            "accounts/project_settings.html",
            _settings_context(request, delete_form=delete_form),
            status=422,
        )
    name = request.project.name
    project_delete(project=request.project, by=request.user, ip=client_ip(request))
    request.session.pop(CURRENT_PROJECT_SESSION_KEY, None)
    messages.success(
        request,
        f"The project “{name}” is deleted: its API keys and client tokens are revoked and "
        "its members were emailed.",
    )
    return redirect("home")


def _member_search(text: str) -> str:
    """What a members search looks for: one line, at most 100 characters, and never a
    whole token (the page's own address never holds one, filters_without_secrets; an
    action's form carries the search on, and its answer is written into an address)."""
    text = " ".join(text[:1000].replace("\x00", "").split())[:100]
    return "" if holds_secret("".join(text.split())) else text


def _members_query(q: str, page: int) -> str:
    """The members list's own query: what the pager's links and the actions' answers keep."""
    query = QueryDict(mutable=True)
    if q:
        query["q"] = q
    if page > 1:
        query["page"] = str(page)
    return query.urlencode()


def _members_listed(request: ProjectRequest, place: QueryDict) -> tuple[str, Page[Membership]]:
    """The search and the page of the members list that `place` (the page's query, or
    the fields an action's form carried from it) names, as the list is now."""
    q = _member_search(place.get("q", ""))
    members = request.project.memberships.select_related("user")
    if q:
        members = members.matching(q)
    members = members.yours_first(request.user)
    # get_page() turns anything that is not a page number ("²", "-1", 10**5000) into the
    # first or the last page: past the end (after a removal), the last.
    return q, Paginator(members, MEMBERS_PAGE_SIZE).get_page(place.get("page"))


def _members_context(request: ProjectRequest, form: InvitationForm) -> dict[str, object]:
    project = request.project
    # A refused invitation is answered with the page it was sent from.
    q, members_page = _members_listed(
        request, request.POST if request.method == "POST" else request.GET
    )
    invitations = (
        project.invitations.pending().newest_first().select_related("invited_by")
        if request.membership.is_owner
        else Invitation.objects.none()
    )
    return {
        "q": q,
        "members": members_page.object_list,
        "members_page": members_page,
        "pages": {
            "previous": "?" + _members_query(q, members_page.number - 1),
            "next": "?" + _members_query(q, members_page.number + 1),
        },
        "form": form,
        "invitations": invitations,
        "roles": Membership.Role.choices,
        # The last owner cannot leave; the button is not offered to them.
        "owners": project.memberships.owners().count(),
        "now": timezone.now(),
    }


def _invitation_refused(request: ProjectRequest, form: InvitationForm) -> HttpResponse:
    """The members page the form was sent from, with its errors beside its fields."""
    return render(request, MEMBERS_TEMPLATE, _members_context(request, form), status=422)


def _member_of(request: ProjectRequest, membership_id: int) -> Membership:
    """A membership of this project (another project's is 404)."""
    return get_object_or_404(
        Membership.objects.select_related("user", "project"),
        pk=membership_id,
        project=request.project,
    )


def _place_on_page(request: ProjectRequest, membership: Membership) -> int | None:
    """Where `membership` stands in the list (0: the first row of page 1), if it is on the
    page an action's form was sent from; read before the action changes the list."""
    _, members_page = _members_listed(request, request.POST)
    rows = [m.pk for m in members_page.object_list]
    if membership.pk not in rows:
        return None
    return members_page.start_index() - 1 + rows.index(membership.pk)


# The extra tag of a members action's message: where on the list its outcome is said.
_OUTCOME_TAG = "members-outcome:"


def _back_to_members(
    request: ProjectRequest,
    level: int,
    said: str,
    *,
    row: Membership | None = None,
    stood_at: int | None = None,
    invitations: bool = False,
) -> HttpResponse:
    """The members page an action's form was sent from, its search and page: an owner
    working through page 7 of a large project stays there. The page's number is read as
    the pager reads one, against the list as it is now, so a removal that emptied the
    last page shows the new last.

    And the action's outcome, `said`, where the owner is looking, not at the page's top
    (off screen, 40 rows up): just above `row` while it is on the page, else where the
    removed row stood (`stood_at`: above the row that took its place, untinted, or below
    the page's last), else under the invitations' heading. The message carries that place
    (_OUTCOME_TAG) for the page to put its one live region, #messages, there; the answer
    leads to it. Without a place on the page it is said at the top, as elsewhere."""
    q, members_page = _members_listed(request, request.POST)
    rows = [m.pk for m in members_page.object_list]
    at = ""
    if row is not None and row.pk in rows:
        at = f"above:{row.pk}"
    elif stood_at is not None and rows:
        on_page = max(stood_at - (members_page.start_index() - 1), 0)
        # Past this page's end when the removal emptied the last page: below the new last.
        at = f"before:{rows[on_page]}" if on_page < len(rows) else f"below:{rows[-1]}"
    elif invitations and request.membership.is_owner:
        at = "invitations"
    messages.add_message(request, level, said, extra_tags=f"{_OUTCOME_TAG}{at}" if at else "")
    url = url_with_query(
        reverse("accounts:project_members", kwargs={"slug": request.project.slug}),
        _members_query(q, members_page.number),
    )
    return HttpResponseRedirect(f"{url}#messages" if at else url)


def _outcome_place(request: ProjectRequest, shown: Iterable[Membership]) -> dict[str, object]:
    """Where on this page of the members list an action's outcome is said (see
    _back_to_members): the page's messages go {"outcome_above": pk} (the row acted on),
    "outcome_before" (where a removed row stood) or "outcome_below" a row shown, or
    "outcome_invitations"; nothing (the page's top) when that place is not on the page."""
    rows = {m.pk for m in shown}
    for message in messages.get_messages(request):
        place = message.extra_tags.removeprefix(_OUTCOME_TAG)
        if place == message.extra_tags:
            continue
        if place == "invitations" and request.membership.is_owner:
            return {"outcome_placed": True, "outcome_invitations": True}
        side, _, pk = place.partition(":")
        if side in ("above", "before", "below") and pk.isdigit() and int(pk) in rows:
            return {"outcome_placed": True, f"outcome_{side}": int(pk)}
    return {}


@require_GET
@filters_without_secrets
@project_member_required
def project_members(request: ProjectRequest) -> HttpResponse:
    """The members, 50 a page, found by name or address; the owner's invitations."""
    context = _members_context(request, InvitationForm(project=request.project))
    if wants_fragment(request) and request.htmx.target == "member-list":
        template = f"{MEMBERS_TEMPLATE}#member-list"
    else:
        template = MEMBERS_TEMPLATE
        context.update(_outcome_place(request, cast("Iterable[Membership]", context["members"])))
    response = render(request, template, context)
    # The same URL answers the page or its list: caches must keep them apart.
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_POST
@project_owner_required
@verified_email_required
@sudo_required
def project_invitation_send(request: ProjectRequest) -> HttpResponse:
    form = InvitationForm(request.POST, project=request.project)
    if form.is_valid() and not throttle_allows(
        f"member-add:{request.user.pk}", limit=INVITATIONS_PER_HOUR, window_seconds=3600
    ):
        form.add_error(None, "You sent many invitations in the last hour. Try again later.")
    if form.is_valid() and not throttle_allows(
        f"invite-to:{request.project.pk}:{inbox(form.cleaned_data['email'])}",
        limit=INVITATIONS_PER_EMAIL_PER_DAY,
        window_seconds=86400,
    ):
        # Nobody's inbox fills with this project's invitations: counted per inbox as mail
        # reaches it (core.mail.inbox), so `+tag` and other spellings of one address share
        # the count. Per project, so that a stranger's project cannot use it up.
        form.add_error("email", "This address was invited many times today. Try again tomorrow.")
    if not form.is_valid():
        return _invitation_refused(request, form)
    email = form.cleaned_data["email"]
    try:
        invitation_send(
            project=request.project,
            email=email,
            role=form.cleaned_data["role"],
            by=request.user,
            ip=client_ip(request),
        )
    except TooManyInvitations as full:  # the last place taken since the form's check
        form.add_error("email", str(full))
        return _invitation_refused(request, form)
    # The same words whether or not the email has an account (no enumeration).
    return _back_to_members(
        request,
        messages.SUCCESS,
        f"Invitation sent to {email}. They join the project once they accept; the link "
        "expires in 7 days.",
        invitations=True,
    )


@require_POST
@project_owner_required
@sudo_required
def project_invitation_revoke(request: ProjectRequest, invitation_id: int) -> HttpResponse:
    invitation = get_object_or_404(
        Invitation.objects.select_related("project"), pk=invitation_id, project=request.project
    )
    invitation_revoke(invitation=invitation, by=request.user, ip=client_ip(request))
    return _back_to_members(
        request,
        messages.SUCCESS,
        f"The invitation to {invitation.email} was withdrawn.",
        invitations=True,
    )


@require_POST
@project_owner_required
@sudo_required
def project_member_remove(request: ProjectRequest, membership_id: int) -> HttpResponse:
    membership = _member_of(request, membership_id)
    stood_at = _place_on_page(request, membership)
    try:
        membership_remove(membership=membership, by=request.user, ip=client_ip(request))
    except MembershipError as error:
        return _back_to_members(request, messages.ERROR, str(error), row=membership)
    said = f"{membership.user.email} was removed from the project."
    if membership.user_id == request.user.pk:
        messages.success(request, said)
        return redirect("home")
    return _back_to_members(request, messages.SUCCESS, said, stood_at=stood_at)


@require_POST
@project_member_may_leave
def project_leave(request: ProjectRequest) -> HttpResponse:
    """Any member may leave, except the last owner; one without the second factor the
    project requires too."""
    try:
        membership_remove(membership=request.membership, by=request.user, ip=client_ip(request))
    except MembershipError as error:
        return _back_to_members(request, messages.ERROR, str(error), row=request.membership)
    request.session.pop(CURRENT_PROJECT_SESSION_KEY, None)
    messages.success(request, f"You left {request.project.name}.")
    return redirect("home")


@require_POST
@project_owner_required
@sudo_required
def project_member_role(request: ProjectRequest, membership_id: int) -> HttpResponse:
    membership = _member_of(request, membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _back_to_members(request, messages.ERROR, "Choose Owner or Member.", row=membership)
    try:
        membership = membership_set_role(
            membership=membership,
            role=form.cleaned_data["role"],
            by=request.user,
            ip=client_ip(request),
        )
    except MembershipError as error:
        return _back_to_members(request, messages.ERROR, str(error), row=membership)
    said = f"{membership.user.email} is now {membership.get_role_display().lower()}."
    return _back_to_members(request, messages.SUCCESS, said, row=membership)


@require_POST
@project_owner_required
@sudo_required
def project_transfer(request: ProjectRequest, membership_id: int) -> HttpResponse:
    """Hand the project to another member: they become an owner, you a member."""
    to = _member_of(request, membership_id)
    try:
        project_transfer_ownership(
            project=request.project, to=to, by=request.membership, ip=client_ip(request)
        )
    except MembershipError as error:
        return _back_to_members(request, messages.ERROR, str(error), row=to)
    said = f"{to.user.email} is now an owner of {request.project.name}; you are a member."
    return _back_to_members(request, messages.SUCCESS, said, row=to)


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
        messages.success(request, f"You joined {membership.project.name}.")
        return redirect("overview:project_overview", slug=membership.project.slug)
    return render(request, "accounts/invitation.html", context)


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
