"""The per-key usage page."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from accounts.decorators import project_member_required
from apikeys.models import ApiKey
from reminix_dashboard.http import ProjectRequest


@require_GET
@project_member_required
def api_key_usage(request: ProjectRequest, key_id: int) -> HttpResponse:
    api_key = get_object_or_404(ApiKey.objects.for_project(request.project), pk=key_id)
    return render(request, "apikeys/api_key_usage.html", {"api_key": api_key})
