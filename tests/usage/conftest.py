"""Fixtures the usage tests share: the project's key (tests/conftest.py's `api_key`, without
its secret) and a client token it minted."""

from __future__ import annotations

import pytest

from accounts.models import Project
from apikeys.models import ApiKey, ClientToken
from apikeys.services import client_token_create


@pytest.fixture
def key(api_key: tuple[ApiKey, str]) -> ApiKey:
    return api_key[0]


@pytest.fixture
def minted(project: Project, key: ApiKey) -> ClientToken:
    """A client token the key minted (a PAT's tests mint theirs from the PAT)."""
    token, _ = client_token_create(project=project, api_key=key, context={})
    return token
