"""Shared fixtures: users and projects made through the same services the app uses."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from accounts.models import Project, User
from accounts.services import project_create, user_sign_up

PASSWORD = "correct horse battery staple"


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    counter = iter(range(1, 10_000))

    def make(email: str | None = None, name: str = "", password: str = PASSWORD) -> User:
        email = email or f"user{next(counter)}@example.com"
        return user_sign_up(email=email, password=password, name=name)

    return make


@pytest.fixture
def user(make_user: Callable[..., User]) -> User:
    return make_user(email="ada@example.com", name="Ada Lovelace")


@pytest.fixture
def project(user: User) -> Project:
    """The project that sign-up made for `user`."""
    return Project.objects.for_user(user).get()


@pytest.fixture
def make_project() -> Callable[..., Project]:
    def make(owner: User, name: str = "Another project") -> Project:
        return project_create(name=name, owner=owner)

    return make


@pytest.fixture
def signed_in(client: Client, user: User) -> Client:
    client.force_login(user)
    return client
