"""Sign-up, sign-in, password pages, and the project pages of issue #2: create, overview,
settings and members."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import (
    CURRENT_PROJECT_SESSION_KEY,
    project_member_required,
    project_owner_required,
)
from accounts.forms import (
    AllowedOriginsForm,
    KeyPolicyForm,
    MemberAddForm,
    ProjectForm,
    SignInForm,
    SignUpForm,
)
from accounts.http import AuthenticatedRequest, ProjectRequest
from accounts.models import Membership
from accounts.services import (
    MembershipError,
    membership_add,
    membership_remove,
    project_create,
    project_rename,
    project_set_allowed_origins,
    project_set_key_policy,
    user_sign_up,
)
from audit.log import audit_record
from core.client_ip import client_ip
from core.counters import throttle_allows
from core.http import HtmxHttpRequest

SIGNUPS_PER_HOUR = 10
RESETS_PER_EMAIL_PER_HOUR = 3
RESETS_PER_IP_PER_HOUR = 20
MEMBER_ADDS_PER_HOUR = 30


@require_GET
def home(request: HtmxHttpRequest) -> HttpResponse:
    """Signed in: the project last worked on. Signed out: the sign-in page."""
    if not request.user.is_authenticated:
        return redirect("accounts:login")
    memberships = Membership.objects.filter(user=request.user).select_related("project")
    # Otherwise the project the user has been in longest, which is their own first one:
    # never one that someone else added them to later, whatever its name.
    current = request.session.get(CURRENT_PROJECT_SESSION_KEY)
    membership = (
        memberships.filter(project_id=current).first() if isinstance(current, int) else None
    ) or memberships.order_by("created_at", "id").first()
    if membership is None:
        return redirect("accounts:project_create")
    return redirect("accounts:project_overview", slug=membership.project.slug)


@require_http_methods(["GET", "POST"])
def signup(request: HtmxHttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and not throttle_allows(
        f"signup:{client_ip(request)}", limit=SIGNUPS_PER_HOUR, window_seconds=3600
    ):
        # Checked before the form: its password validation and Argon2 hash are the cost.
        form = SignUpForm(request.POST)
        form.errors.clear()
        form.add_error(
            None,
            "Too many accounts were created from your network in the last hour. Try again later.",
        )
        return render(request, "accounts/signup.html", {"form": form}, status=429)
    if request.method == "POST" and form.is_valid():
        user = user_sign_up(
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
            name=form.cleaned_data.get("name", ""),
            ip=client_ip(request),
        )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, "Welcome to Reminix. Your first project is ready.")
        return redirect("home")
    return render(request, "accounts/signup.html", {"form": form})


class SignInView(auth_views.LoginView):
    """Django's sign-in, with our form: it rotates the session key on success."""

    form_class = SignInForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


class SignOutView(auth_views.LogoutView):
    """Sign out (POST only, as in Django)."""

    def post(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You are signed out.")
        return response


class PasswordChangeView(auth_views.PasswordChangeView):
    """Change password. Django's session hash check then signs out every other session."""

    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:password_change")

    def form_valid(self, form):  # type: ignore[no-untyped-def]
        with transaction.atomic():
            response = super().form_valid(form)
            audit_record(
                action="user.password_changed",
                actor=form.user,
                target=form.user,
                ip=client_ip(self.request),
            )
        messages.success(
            self.request, "Password changed. Your other signed-in sessions have been signed out."
        )
        return response


class PasswordResetView(auth_views.PasswordResetView):
    """Ask for a reset link. The answer is the same whether or not the email has an account."""

    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/email/password_reset.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")

    def form_valid(self, form):  # type: ignore[no-untyped-def]
        # Past the limits, the page reads the same but no email goes: a reset form must not
        # become a way to flood someone's inbox.
        email = form.cleaned_data["email"].strip().lower()
        ip = client_ip(self.request)
        if not (
            throttle_allows(
                f"reset-email:{email}", limit=RESETS_PER_EMAIL_PER_HOUR, window_seconds=3600
            )
            and throttle_allows(f"reset-ip:{ip}", limit=RESETS_PER_IP_PER_HOUR, window_seconds=3600)
        ):
            return HttpResponseRedirect(self.get_success_url())
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:login")
    post_reset_login = False

    def form_valid(self, form):  # type: ignore[no-untyped-def]
        with transaction.atomic():
            response = super().form_valid(form)
            audit_record(
                action="user.password_changed",
                actor=form.user,
                target=form.user,
                ip=client_ip(self.request),
                metadata={"via": "reset link"},
            )
        messages.success(self.request, "Your password is reset. Sign in with the new one.")
        return response


@login_required
@require_http_methods(["GET", "POST"])
def project_create_view(request: AuthenticatedRequest) -> HttpResponse:
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        project = project_create(
            name=form.cleaned_data["name"], owner=request.user, ip=client_ip(request)
        )
        messages.success(request, f"Project “{project.name}” created.")
        return redirect("accounts:project_overview", slug=project.slug)
    return render(request, "accounts/project_create.html", {"form": form})


@require_GET
@project_member_required
def project_overview(request: ProjectRequest) -> HttpResponse:
    agents = request.project.agents.all()
    return render(request, "accounts/project_overview.html", {"agents": agents})


def _origins_initial(request: ProjectRequest) -> dict[str, str]:
    return {"origins": "\n".join(request.project.allowed_origins)}


@require_http_methods(["GET", "POST"])
@project_member_required
def project_settings(request: ProjectRequest) -> HttpResponse:
    """General settings: the project's name and its browser origins. Changes are for owners."""
    form = ProjectForm(request.POST or None, instance=request.project)
    origins_form = AllowedOriginsForm(initial=_origins_initial(request))
    status = 200
    if request.method == "POST":
        if not request.membership.is_owner:
            messages.error(request, "Only a project owner can rename the project.")
            return redirect("accounts:project_settings", slug=request.project.slug)
        if form.is_valid():
            project_rename(
                project=request.project,
                name=form.cleaned_data["name"],
                by=request.user,
                ip=client_ip(request),
            )
            messages.success(request, "Project renamed.")
            return redirect("accounts:project_settings", slug=request.project.slug)
        request.project.refresh_from_db(fields=["name"])
        status = 422
    return render(
        request,
        "accounts/project_settings.html",
        {"form": form, "origins_form": origins_form, "policy_form": _policy_form(request)},
        status=status,
    )


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
def project_key_policy(request: ProjectRequest) -> HttpResponse:
    policy_form = KeyPolicyForm(request.POST)
    if not policy_form.is_valid():
        context = {
            "form": ProjectForm(instance=request.project),
            "origins_form": AllowedOriginsForm(initial=_origins_initial(request)),
            "policy_form": policy_form,
        }
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
def project_origins(request: ProjectRequest) -> HttpResponse:
    origins_form = AllowedOriginsForm(request.POST)
    if not origins_form.is_valid():
        form = ProjectForm(instance=request.project)
        return render(
            request,
            "accounts/project_settings.html",
            {"form": form, "origins_form": origins_form, "policy_form": _policy_form(request)},
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


def _members_page(request: ProjectRequest, form: MemberAddForm, status: int = 200) -> HttpResponse:
    members = request.project.memberships.select_related("user").order_by("user__email")
    template = "accounts/project_members.html"
    if request.htmx:
        template += "#members"
    return render(request, template, {"members": members, "form": form}, status=status)


@require_GET
@project_member_required
def project_members(request: ProjectRequest) -> HttpResponse:
    return _members_page(request, MemberAddForm(project=request.project))


@require_POST
@project_owner_required
def project_member_add(request: ProjectRequest) -> HttpResponse:
    form = MemberAddForm(request.POST, project=request.project)
    if form.is_valid() and not throttle_allows(
        f"member-add:{request.user.pk}", limit=MEMBER_ADDS_PER_HOUR, window_seconds=3600
    ):
        form.add_error(None, "You added many members in the last hour. Try again later.")
    if not form.is_valid():
        return _members_page(request, form, status=422 if not request.htmx else 200)
    email, user = form.cleaned_data["email"], form.cleaned_data["user"]
    if user is not None:
        membership_add(
            project=request.project,
            user=user,
            role=form.cleaned_data["role"],
            by=request.user,
            ip=client_ip(request),
        )
    # The same words whether or not the email has an account (no enumeration).
    messages.success(
        request,
        f"If {email} belongs to a Reminix account, that person is now a member. "
        "Otherwise ask them to sign up with it, then add them again.",
    )
    return redirect("accounts:project_members", slug=request.project.slug)


@require_POST
@project_owner_required
def project_member_remove(request: ProjectRequest, membership_id: int) -> HttpResponse:
    membership = get_object_or_404(
        Membership.objects.select_related("user", "project"),
        pk=membership_id,
        project=request.project,
    )
    try:
        membership_remove(membership=membership, by=request.user, ip=client_ip(request))
    except MembershipError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"{membership.user.email} was removed from the project.")
        if membership.user_id == request.user.pk:
            return redirect("home")
    return HttpResponseRedirect(
        reverse("accounts:project_members", kwargs={"slug": request.project.slug})
    )
