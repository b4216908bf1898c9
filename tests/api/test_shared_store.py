"""With a shared store (Redis): one round trip per call, copies of callers that are never
stale, rate limits across workers, and an API that survives Redis going away."""

from __future__ import annotations

import threading

from django.db import connection
from django.test.utils import CaptureQueriesContext

from apikeys.services import api_key_revoke
from core import invalidation
from core.shared_store import SharedStore
from tests.api.assertions import assert_error, assert_ok

INVOKE = "/v1/agents/my-agent/invoke"


def lookups(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if "token_hash" in q["sql"]]


def test_a_known_token_is_answered_from_the_workers_copy_without_the_database(api, redis_store):
    assert_ok(api.post(INVOKE, {"prompt": "first"}))
    with CaptureQueriesContext(connection) as captured:
        assert_ok(api.post(INVOKE, {"prompt": "again"}))
    assert lookups(captured) == []


def test_a_revoked_key_is_refused_on_the_very_next_call_despite_the_copy(
    api, api_key, user, redis_store, django_capture_on_commit_callbacks
):
    assert_ok(api.post(INVOKE, {"prompt": "cached now"}))
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=api_key[0], by=user)
    assert_error(api.post(INVOKE, {"prompt": "after"}), 401, "expired_api_key")


def test_a_change_the_store_could_not_hear_of_waits_out_every_copy(
    api, api_key, user, redis_store, django_capture_on_commit_callbacks, monkeypatch
):
    assert_ok(api.post(INVOKE, {"prompt": "cached now"}))
    waited: list[float] = []
    monkeypatch.setattr(invalidation.time, "sleep", waited.append)
    monkeypatch.setattr(SharedStore, "available", property(lambda self: False))
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=api_key[0], by=user)
    assert waited == [invalidation.CACHE_SECONDS]


def test_with_redis_gone_calls_are_checked_against_the_database_and_never_fail(
    api, api_key, user, settings, redis_store
):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    assert_ok(api.post(INVOKE, {"prompt": "still served"}))
    api_key_revoke(api_key=api_key[0], by=user)
    assert_error(api.post(INVOKE, {"prompt": "revoked"}), 401, "expired_api_key")


def test_with_redis_gone_rate_limits_fail_open(api, settings, redis_store):
    settings.API_RATE_LIMIT_PER_MINUTE = 1
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    for _ in range(3):
        response = api.post(INVOKE, {"prompt": "not counted"})
        assert_ok(response)
        assert "X-RateLimit-Limit" not in response


def test_n_threads_counting_at_once_on_a_limit_of_n_over_2_get_exactly_n_over_2_through(
    settings, redis_store
):
    """Each thread has its own Redis connection, as each worker has: the count is atomic
    in Redis, whatever the interleaving. (Across server processes: test_two_servers.py.)"""
    from api.callers import _count_and_check

    settings.API_RATE_LIMIT_PER_MINUTE = 20
    counts: list[int] = []
    start = threading.Barrier(40)

    def call() -> None:
        start.wait()
        calls, _ = _count_and_check(redis_store, "a" * 64, ())
        counts.append(calls or 0)

    threads = [threading.Thread(target=call) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts) == list(range(1, 41))  # every call counted once
    assert sum(1 for n in counts if n <= settings.API_RATE_LIMIT_PER_MINUTE) == 20
