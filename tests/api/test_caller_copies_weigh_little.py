"""A worker's copies of callers (api/callers.py) are bounded by what their rows hold, not
only by their number.

Each copy holds its rows as Python objects: a client token's `context` and
`serverContext` (4 KiB of JSON each), an agent's `config` (64 KiB). JSON of empty lists,
`[[],[],…]`, takes twenty times its size once parsed (64 KiB of it, 1.3 MB), and anyone
can mint client tokens by the thousand with a key of their own project: 4,096 copies of
such callers took gigabytes in each worker that every tenant shares. So the copies also
stop at MAX_CACHED_CHARS characters of their rows' text, least recently used dropped
first."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from api import callers
from tests.api.assertions import assert_ok
from tests.conftest import Api

# About 4 KiB of JSON that parses into some 1,300 lists.
FAT = {"lists": [[] for _ in range(1300)]}


@pytest.fixture
def small_budget(monkeypatch):
    monkeypatch.setattr(callers, "MAX_CACHED_CHARS", 60_000)


def fat_client_token(api: Api) -> Api:
    minted = assert_ok(api.post("/v1/client-tokens", {"context": FAT, "serverContext": FAT}), 201)
    return Api(Client(), minted["token"])


def test_the_copies_stop_at_their_budget_of_characters(api, redis_store, small_budget):
    browsers = [fat_client_token(api) for _ in range(30)]
    for browser in browsers:
        assert_ok(browser.get("/client/token"))
    assert 0 < callers.copies.chars <= 60_000
    assert len(callers.copies) < 30


def test_the_callers_used_last_stay_copied(api, redis_store, small_budget):
    browsers = [fat_client_token(api) for _ in range(30)]
    for browser in browsers:
        assert_ok(browser.get("/client/token"))
    with CaptureQueriesContext(connection) as asked:
        assert_ok(browsers[-1].get("/client/token"))
    assert not [q for q in asked.captured_queries if "token_hash" in q["sql"]]


def test_a_caller_heavier_than_the_whole_budget_is_never_copied(api, redis_store, monkeypatch):
    monkeypatch.setattr(callers, "MAX_CACHED_CHARS", 1_000)
    browser = fat_client_token(api)
    callers.copies.clear()  # the key's own copy, made as it minted
    assert_ok(browser.get("/client/token"))
    assert len(callers.copies) == 0 and callers.copies.chars == 0
    with CaptureQueriesContext(connection) as asked:
        assert_ok(browser.get("/client/token"))  # read from the database each time
    assert [q for q in asked.captured_queries if "token_hash" in q["sql"]]
