"""The project's front page."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.decorators import project_member_required
from accounts.http import ProjectRequest
from overview.health import project_health

# Agents are deployed by the API without end; the page names the first, by name, and says
# how many more there are. Their configurations (up to 64 KiB each) are never read here.
AGENTS_SHOWN = 50


@require_GET
@project_member_required
def project_overview(request: ProjectRequest) -> HttpResponse:
    health = project_health(project=request.project, with_sign_ins=request.membership.is_owner)
    agents = request.project.agents.only("name", "kind", "description").order_by("name")
    shown = list(agents[: AGENTS_SHOWN + 1])
    more = agents.count() - AGENTS_SHOWN if len(shown) > AGENTS_SHOWN else 0
    context = {"health": health, "agents": shown[:AGENTS_SHOWN], "agents_more": more}
    return render(request, "overview/project_overview.html", context)
