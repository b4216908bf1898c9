"""The project's front page."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.decorators import project_member_required
from accounts.http import ProjectRequest
from overview.health import project_health


@require_GET
@project_member_required
def project_overview(request: ProjectRequest) -> HttpResponse:
    health = project_health(project=request.project, with_sign_ins=request.membership.is_owner)
    context = {"health": health, "agents": request.project.agents.all()}
    return render(request, "overview/project_overview.html", context)
