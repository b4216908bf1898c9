"""An owner's change refused by its service answers 403 from any dashboard view, not only
from one behind project_owner_required: a view that forgets the decorator fails closed,
with the same page, not a 500."""

from __future__ import annotations

import re

import pytest
from django.http import HttpResponse
from django.test import Client
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from accounts.decorators import project_member_required
from accounts.http import ProjectRequest
from accounts.models import Membership
from accounts.services import NOT_AN_OWNER, project_rename
from reminix_dashboard.urls import urlpatterns as dashboard_urlpatterns


@require_POST
@project_member_required
def rename_without_owner_check(request: ProjectRequest) -> HttpResponse:
    """A view that should have been behind project_owner_required."""
    project_rename(project=request.project, name="Mine", by=request.user)
    return HttpResponse("renamed")


urlpatterns = [
    path("throwaway/<slug:slug>/rename/", rename_without_owner_check, name="throwaway"),
    *dashboard_urlpatterns,
]


@pytest.mark.urls(__name__)
def test_a_service_refusing_a_plain_member_answers_403_without_the_owner_decorator(
    project, make_user
):
    member = make_user(email="member@example.com")
    Membership.objects.create(project=project, user=member, role=Membership.Role.MEMBER)
    client = Client(raise_request_exception=False)
    client.force_login(member)
    answer = client.post(reverse("throwaway", args=[project.slug]))
    assert answer.status_code == 403
    assert NOT_AN_OWNER in answer.content.decode()
    project.refresh_from_db()
    assert project.name != "Mine"
    # The same page as the decorator's refusal of the same member.
    decorated = client.post(reverse("accounts:project_origins", args=[project.slug]))
    assert decorated.status_code == 403
    assert refusal(decorated.content.decode()) == refusal(answer.content.decode())


def refusal(html: str) -> str:
    """The 403 page's own words (the rest differs by nonce and CSRF token alone)."""
    return re.search(r"<h1>.*?</p>", html, re.S).group(0)
