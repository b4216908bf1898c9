"""Request types of the dashboard's signed-in pages."""

from __future__ import annotations

from accounts.models import Membership, Project, User
from core.http import HtmxHttpRequest


class AuthenticatedRequest(HtmxHttpRequest):
    """A request from a signed-in user."""

    user: User


class ProjectRequest(AuthenticatedRequest):
    """A request to a project page by one of its members (see accounts.decorators)."""

    project: Project
    membership: Membership
