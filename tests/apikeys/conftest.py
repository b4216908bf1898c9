"""Fixtures the tests of leavers' tokens share."""

from __future__ import annotations

import pytest

from accounts.models import Membership, User


@pytest.fixture
def lou(project, make_user) -> User:
    """A member of the project (not an owner), about to be removed from it or to leave."""
    member = make_user(email="lou@example.com", name="Lou")
    Membership.objects.create(project=project, user=member)
    return member
