"""Request types shared by the dashboard's views."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

if TYPE_CHECKING:
    from accounts.models import Membership, Project, User


class HtmxHttpRequest(HttpRequest):
    """A request that went through django-htmx's middleware."""

    htmx: HtmxDetails


class AuthenticatedRequest(HtmxHttpRequest):
    """A request from a signed-in user."""

    user: User  # type: ignore[assignment]


class ProjectRequest(AuthenticatedRequest):
    """A request to a project page by one of its members (see accounts.decorators)."""

    project: Project
    membership: Membership
