"""Dashboard pages for keys and tokens."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.decorators import project_member_required
from reminix_dashboard.http import AuthenticatedRequest, ProjectRequest


@require_GET
@project_member_required
def api_key_list(request: ProjectRequest) -> HttpResponse:
    return render(request, "apikeys/api_key_list.html")


@require_GET
@project_member_required
def project_usage(request: ProjectRequest) -> HttpResponse:
    return render(request, "apikeys/project_usage.html")


@require_GET
@login_required
def personal_token_list(request: AuthenticatedRequest) -> HttpResponse:
    return render(request, "apikeys/personal_token_list.html")
