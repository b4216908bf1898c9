"""The role matrix's world (tests/accounts/test_role_matrix.py) made for each test, for the
files that walk every page, form or API field with it beside fixtures of their own (`user`
is its Ada). The role matrix itself makes it once for its file."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Project, TotpDevice, User
from tests.accounts.test_role_matrix import World, world_of


@pytest.fixture
def world(make_user: Callable[..., User], user: User, project: Project) -> World:
    TotpDevice.objects.create(user=user, secret_encrypted="x", confirmed_at=timezone.now())
    Client().force_login(user)  # another browser, for the Sessions page to sign out
    return world_of(project, ada=user, make_user=make_user)
