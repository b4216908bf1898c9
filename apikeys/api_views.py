"""/v1 endpoints about the caller itself."""

from __future__ import annotations

from django.http import HttpResponse

from apikeys.api import ApiRequest, api_view, ok


@api_view(["GET"])
def project_current(request: ApiRequest) -> HttpResponse:
    project = request.caller.project
    return ok({"id": project.slug, "name": project.name, "slug": project.slug})
