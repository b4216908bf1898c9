"""A project's pages: its creation, and its settings (name, browser origins, key and
two-factor policies, deletion)."""

from __future__ import annotations

from django.contrib import messages
from django.forms import BaseForm
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts.decorators import (
    CURRENT_PROJECT_SESSION_KEY,
    login_required,
    project_member_required,
    project_owner_required,
    verified_email_required,
)
from accounts.forms import (
    AllowedOriginsForm,
    KeyPolicyForm,
    ProjectDeleteForm,
    ProjectForm,
    TwoFactorPolicyForm,
)
from accounts.http import AuthenticatedRequest, ProjectRequest
from accounts.services import (
    NotAnOwner,
    PolicyRefused,
    TooManyProjects,
    project_create,
    project_delete,
    project_rename,
    project_set_allowed_origins,
    project_set_key_policy,
    project_set_two_factor_policy,
)
from accounts.sudo import sudo_required
from core.client_ip import client_ip
from core.text_direction import quoted


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
            messages.success(request, f"Project {quoted(project.name)} created.")
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
    if project_set_allowed_origins(
        project=request.project,
        origins=origins_form.cleaned_data["origins"],
        by=request.user,
        ip=client_ip(request),
    ):
        messages.success(request, "Allowed browser origins saved.")
    else:
        messages.info(request, "The allowed browser origins are as they were.")
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
        f"The project {quoted(name)} is deleted: its API keys and client tokens are revoked and "
        "its members were emailed.",
    )
    return redirect("home")
