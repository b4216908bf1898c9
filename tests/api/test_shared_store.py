"""With a shared store (Redis): one round trip per call, copies of callers that are never
stale, rate limits across workers, and an API that survives Redis going away."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AllowedOrigin, Membership, Project
from apikeys.models import ApiKey
from apikeys.services import (
    api_key_resume,
    api_key_revoke,
    api_key_roll,
    api_key_suspend,
    personal_token_create,
)
from core import invalidation
from core.shared_store import SharedStore
from tests.api.assertions import assert_error, assert_ok
from tests.conftest import Api

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


def test_after_a_change_each_worker_reads_the_database_once_not_while_the_marker_stands(
    api, api_key, user, redis_store, django_capture_on_commit_callbacks
):
    """Resuming marks the key changed for MARKER_SECONDS; the copy read just after it is
    newer than the mark, so the calls after that are answered from the copy again."""
    api_key_suspend(api_key=api_key[0], by=user, reason="A moment")
    assert_error(api.post(INVOKE, {"prompt": "copied suspended"}), 401, "suspended_api_key")
    with django_capture_on_commit_callbacks(execute=True):
        api_key_resume(api_key=api_key[0], by=user)
    marker = invalidation.marker_key(api_key[0].change_identity)
    assert redis_store.round_trip(("EXISTS", marker)) == [1]
    with CaptureQueriesContext(connection) as captured:
        assert_ok(api.post(INVOKE, {"prompt": "read again"}))
    assert len(lookups(captured)) == 1
    with CaptureQueriesContext(connection) as captured:
        for _ in range(3):
            assert_ok(api.post(INVOKE, {"prompt": "from the copy"}))
    assert lookups(captured) == []
    assert redis_store.round_trip(("EXISTS", marker)) == [1]


def test_a_copy_read_before_a_change_was_marked_is_refused_whatever_the_order(
    api, api_key, user, redis_store, django_capture_on_commit_callbacks, monkeypatch
):
    """The change commits between a call's round trip and its database read: the copy
    that read holds the old key, and its time is before the mark, so it is never used."""
    from api import callers

    real_lookup = callers.lookup

    def revoked_meanwhile(**kwargs):  # the read happens, then the revoke commits and marks
        found = real_lookup(**kwargs)
        with django_capture_on_commit_callbacks(execute=True):
            api_key_revoke(api_key=api_key[0], by=user)
        return found

    monkeypatch.setattr(callers, "lookup", revoked_meanwhile)
    assert_ok(api.post(INVOKE, {"prompt": "read before the revoke"}))
    monkeypatch.setattr(callers, "lookup", real_lookup)
    assert_error(api.post(INVOKE, {"prompt": "after"}), 401, "expired_api_key")


def test_a_marker_from_an_older_release_counts_as_a_change_made_now(api, api_key, redis_store):
    assert_ok(api.post(INVOKE, {"prompt": "cached now"}))
    marker = invalidation.marker_key(api_key[0].change_identity)
    redis_store.round_trip(("SET", marker, "1", "EX", 30))
    with CaptureQueriesContext(connection) as captured:
        assert_ok(api.post(INVOKE, {"prompt": "read again"}))
    assert len(lookups(captured)) == 1


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
        calls, _, _, _ = _count_and_check(redis_store, "a" * 64, ())
        counts.append(calls or 0)

    threads = [threading.Thread(target=call) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts) == list(range(1, 41))  # every call counted once
    assert sum(1 for n in counts if n <= settings.API_RATE_LIMIT_PER_MINUTE) == 20


def test_a_tls_or_unix_socket_redis_url_is_served_by_its_own_connection_class(tmp_path):
    """rediss:// and unix:// URLs name a connection class of their own; handed to the plain
    one, every API call failed with a TypeError instead of falling back to the database."""
    from redis.connection import SSLConnection, UnixDomainSocketConnection

    from core.shared_store import StoreUnavailable

    for url, expected in (
        (f"unix://{tmp_path}/nobody-listens.sock?db=1", UnixDomainSocketConnection),
        ("rediss://127.0.0.1:1/0", SSLConnection),
    ):
        store = SharedStore(url)
        assert store._connection_class is expected
        try:
            store.round_trip(("PING",))
        except StoreUnavailable:
            pass
        else:
            raise AssertionError(f"{url} answered")


def test_a_store_that_lost_its_keys_gets_a_new_epoch_and_no_copy_outlives_a_change(
    api, api_key, user, redis_store, django_capture_on_commit_callbacks, settings
):
    """FLUSHDB, or a restart without persistence, takes the change markers with it; the
    epoch goes too, so the copies made before are not used, and the revoke holds."""
    assert_ok(api.post(INVOKE, {"prompt": "cached now"}))
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=api_key[0], by=user)
    marker = invalidation.marker_key(api_key[0].change_identity)
    # What a flush does to this test's keys: the marker and the epoch are gone.
    redis_store.round_trip(("DEL", marker, f"{settings.REDIS_KEY_PREFIX}epoch"))
    assert_error(api.post(INVOKE, {"prompt": "after the flush"}), 401, "expired_api_key")


def test_an_admit_script_error_other_than_noscript_is_not_run_again(api, redis_store, settings):
    """The script counts the call first: run again after a failure half way, it would
    count the call twice. The database answers the call instead."""
    from api.callers import ADMIT_SHA

    settings.API_RATE_LIMIT_PER_MINUTE = 100
    assert_ok(api.post(INVOKE, {"prompt": "teach Redis the script"}))
    epoch = f"{settings.REDIS_KEY_PREFIX}epoch"
    redis_store.round_trip(("DEL", epoch), ("HSET", epoch, "not", "a string"))
    sent: list[tuple[object, ...]] = []
    real = type(redis_store).round_trip

    def spy(store, *commands, **kwargs):
        sent.extend(c for c in commands if c[0] in ("EVAL", "EVALSHA"))
        return real(store, *commands, **kwargs)

    type(redis_store).round_trip = spy
    try:
        answer = api.post(INVOKE, {"prompt": "the script fails half way"})
    finally:
        type(redis_store).round_trip = real
    assert_ok(answer)
    assert [c[0] for c in sent] == ["EVALSHA"]
    assert sent[0][1] == ADMIT_SHA


def test_check_deploy_warns_when_redis_may_evict_a_change_marker(redis_store):
    from api.checks import change_markers_are_kept

    policy, memory = redis_store.round_trip(
        ("CONFIG", "GET", "maxmemory-policy"), ("CONFIG", "GET", "maxmemory")
    )
    try:
        redis_store.round_trip(
            ("CONFIG", "SET", "maxmemory-policy", "volatile-ttl"),
            ("CONFIG", "SET", "maxmemory", "1gb"),
        )
        [warning] = change_markers_are_kept()
        assert warning.id == "api.W002" and "volatile-ttl" in warning.msg
        redis_store.round_trip(("CONFIG", "SET", "maxmemory-policy", "noeviction"))
        assert change_markers_are_kept() == []
    finally:
        redis_store.round_trip(
            ("CONFIG", "SET", "maxmemory-policy", policy[1]),
            ("CONFIG", "SET", "maxmemory", memory[1]),
        )


def test_a_copy_for_one_project_never_answers_a_call_naming_another(user, make_user, redis_store):
    """A PAT's copy is kept per X-Project: one copy for both would act in the first
    project named while the call names the second."""
    first = Project.objects.for_user(user).get()
    second = Project.objects.for_user(make_user(email="owner@example.com")).get()
    Membership.objects.create(project=second, user=user)
    cli = Api(Client(), personal_token_create(user=user, name="CLI")[1])
    for project in (first, second, first):
        answer = assert_ok(cli.get("/v1/projects/current", headers={"X-Project": project.slug}))
        assert answer["slug"] == project.slug


def test_a_copy_made_on_an_allowed_origin_never_opens_the_client_api_to_another(
    api, project, redis_store
):
    AllowedOrigin.objects.create(project=project, origin="https://app.example.com")
    token = assert_ok(api.post("/v1/client-tokens", {"context": {}}), 201)["token"]
    browser = Api(Client(), token)
    allowed = browser.get("/client/token", headers={"Origin": "https://app.example.com"})
    assert allowed["Access-Control-Allow-Origin"] == "https://app.example.com"
    other = browser.get("/client/token", headers={"Origin": "https://evil.example.net"})
    assert_error(other, 403, "insufficient_permissions")
    assert "Access-Control-Allow-Origin" not in other


def test_a_copy_is_not_used_past_its_lifetime_even_when_no_marker_stands(
    api, api_key, redis_store, monkeypatch
):
    """The lifetime is what covers a change whose marker is gone (it lives 30 s)."""
    from api import callers

    assert_ok(api.post(INVOKE, {"prompt": "cached now"}))
    ApiKey.objects.filter(pk=api_key[0].pk).update(revoked_at=timezone.now())  # unannounced

    class Later:
        time = staticmethod(time.time)

        @staticmethod
        def monotonic() -> float:
            return time.monotonic() + invalidation.CACHE_SECONDS

    monkeypatch.setattr(callers, "time", Later)
    assert_error(api.post(INVOKE, {"prompt": "copy too old"}), 401, "expired_api_key")


def test_a_change_marked_at_the_very_time_a_copy_was_read_is_not_in_it(api, api_key, redis_store):
    """Times are by the µs: a change marked in the µs of the copy's round trip may have
    committed after its read, so the copy is not used."""
    from api.callers import copies

    assert_ok(api.post(INVOKE, {"prompt": "cached now"}))
    (copy,) = copies._copies.values()
    ApiKey.objects.filter(pk=api_key[0].pk).update(revoked_at=timezone.now())
    marker = invalidation.marker_key(api_key[0].change_identity)
    redis_store.round_trip(("SET", marker, str(copy.seen_at), "EX", 30))
    assert_error(api.post(INVOKE, {"prompt": "marked as it was read"}), 401, "expired_api_key")


def test_with_redis_each_token_has_its_own_limit(api, make_key, project, settings, redis_store):
    settings.API_RATE_LIMIT_PER_MINUTE = 1
    _, second = make_key(project, name="Second")
    assert_ok(api.get("/v1/agents"))
    assert_ok(api.get("/v1/agents", token=second))
    assert_error(api.get("/v1/agents"), 429, "rate_limit_exceeded")


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "in-process"])
def test_a_rolled_keys_two_secrets_share_its_one_limit_through_the_overlap(
    api, api_key, user, settings, request, django_capture_on_commit_callbacks, shared
):
    """Counted in Redis before the key is known, a call counted by the secret presented:
    a rolled key had its limit twice over through the overlap (up to seven days), once
    per secret (core/shared_limits.py). In one process calls count by the key already."""
    if shared:
        request.getfixturevalue("redis_store")
    settings.API_RATE_LIMIT_PER_MINUTE = 2
    with django_capture_on_commit_callbacks(execute=True):
        new = api_key_roll(api_key=api_key[0], by=user, overlap=timedelta(hours=1))
    old = api_key[1]
    assert_ok(api.get("/v1/agents", token=old))
    assert_ok(api.get("/v1/agents", token=new))
    for token in (old, new):
        refused = api.get("/v1/agents", token=token)
        assert_error(refused, 429, "rate_limit_exceeded")
        assert refused["X-RateLimit-Remaining"] == "0"


def test_a_roll_without_an_overlap_names_no_shared_count(
    api, api_key, user, redis_store, django_capture_on_commit_callbacks
):
    from apikeys.tokens import token_hash
    from core.shared_limits import count_alias_key

    with django_capture_on_commit_callbacks(execute=True):
        new = api_key_roll(api_key=api_key[0], by=user, overlap=timedelta(0))
    digests = (token_hash(api_key[1]), token_hash(new))
    assert redis_store.round_trip(*(("EXISTS", count_alias_key(d)) for d in digests)) == [0, 0]
    assert_ok(api.get("/v1/agents", token=new))


def test_each_rate_limit_counter_in_redis_expires(api, settings, redis_store):
    settings.API_RATE_LIMIT_PER_MINUTE = 5
    assert_ok(api.get("/v1/agents"))
    (counter,) = redis_store.round_trip(("KEYS", f"{settings.REDIS_KEY_PREFIX}calls:*"))[0]
    (lifetime,) = redis_store.round_trip(("TTL", counter))
    assert 0 < lifetime <= 120


def test_a_token_pasted_where_a_copy_is_keyed_is_never_kept_in_the_copies(
    api, user, project, make_key, redis_store
):
    """A copy is kept under the agent's name in the path, the X-Project and the Origin of
    its call: a token pasted into any of them (each takes a token's characters) stayed in
    the worker's memory as the key of a copy, and its change marker named it to Redis on
    the next call. A token is never kept in a cache."""
    from api.callers import copies

    _, pasted = make_key(project, name="Pasted")
    cli = Api(Client(), personal_token_create(user=user, name="CLI")[1])
    browser = Api(Client(), assert_ok(api.post("/v1/client-tokens", {"context": {}}), 201)["token"])
    copies.clear()
    for _ in range(2):
        assert_error(
            api.post(f"/v1/agents/{pasted}/invoke", {"prompt": "hi"}), 404, "agent_not_found"
        )
        assert_error(
            cli.get("/v1/projects/current", headers={"X-Project": pasted}),
            403,
            "insufficient_permissions",
        )
        assert_error(
            browser.get("/client/token", headers={"Origin": pasted}),
            403,
            "insufficient_permissions",
        )
    assert not [key for key in copies._copies if any(pasted in str(part) for part in key)]
