"""Idempotency-Key on writes, and per-token rate limits (shared/CONTRACT.md)."""

import datetime
import io
from collections.abc import Sequence

import pytest
from django.core.management import call_command
from django.db import OperationalError, connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import Execution
from api.idempotency import idempotency_records_prune
from api.models import IdempotencyRecord
from apikeys.models import ClientToken
from tests.api.assertions import assert_error, assert_ok
from tests.conftest import Api, finished, paused_in_another_thread, statements_time_out


def test_a_retried_write_with_the_same_key_answers_the_first_result_and_acts_once(api):
    headers = {"Idempotency-Key": "order-1"}
    first = api.post("/v1/agents/my-agent/invoke", {"prompt": "once"}, headers=headers)
    again = api.post("/v1/agents/my-agent/invoke", {"prompt": "once"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Execution.objects.count() == 1


def test_without_a_key_each_write_acts(api):
    api.post("/v1/agents/my-agent/invoke", {"prompt": "a"})
    api.post("/v1/agents/my-agent/invoke", {"prompt": "a"})
    assert Execution.objects.count() == 2


def test_the_same_key_for_a_different_request_is_refused(api):
    headers = {"Idempotency-Key": "k"}
    api.post("/v1/agents/my-agent/invoke", {"prompt": "a"}, headers=headers)
    response = api.post("/v1/agents/my-agent/invoke", {"prompt": "b"}, headers=headers)
    assert "different request" in assert_error(response, 400, "invalid_request")["message"]
    assert Execution.objects.count() == 1


def test_keys_are_per_project(api, make_user, make_key):
    from accounts.models import Project

    other = Project.objects.for_user(make_user(email="o@example.com")).get()
    _, other_token = make_key(other, name="Other")
    headers = {"Idempotency-Key": "shared-name"}
    api.post("/v1/agents/my-agent/invoke", {"prompt": "a"}, headers=headers)
    response = api.post(
        "/v1/agents/my-agent/invoke", {"prompt": "a"}, headers=headers, token=other_token
    )
    assert "Idempotent-Replayed" not in response
    assert Execution.objects.count() == 2


def test_a_key_older_than_24_hours_acts_again(api):
    headers = {"Idempotency-Key": "old"}
    api.send("PUT", "/v1/agents/bot", {"description": "v1"}, headers=headers)
    IdempotencyRecord.objects.update(created_at=timezone.now() - datetime.timedelta(hours=25))
    response = api.send("PUT", "/v1/agents/bot", {"description": "v1"}, headers=headers)
    assert "Idempotent-Replayed" not in response
    assert response.status_code == 200  # updated, not created: the first call acted


def test_a_refused_write_is_not_kept_and_can_be_retried(api):
    headers = {"Idempotency-Key": "fix-and-retry"}
    refused = api.send("PUT", "/v1/agents/bot", {"kind": "nope"}, headers=headers)
    assert_error(refused, 400, "invalid_field_value")
    assert not IdempotencyRecord.objects.filter(key="fix-and-retry").exists()
    # The corrected request under the same key acts, and is then kept.
    assert_ok(api.send("PUT", "/v1/agents/bot", {"kind": "echo"}, headers=headers), 201)
    assert IdempotencyRecord.objects.get(key="fix-and-retry").status == 201


def test_a_minted_token_is_never_replayed(api):
    headers = {"Idempotency-Key": "mint-1"}
    first = assert_ok(api.post("/v1/client-tokens", {"context": {}}, headers=headers), 201)
    response = api.post("/v1/client-tokens", {"context": {}}, headers=headers)
    error = assert_error(response, 409, "invalid_request")
    assert first["id"] in error["message"]
    assert first["token"] not in response.content.decode()
    assert first["token"] not in IdempotencyRecord.objects.get().body
    assert ClientToken.objects.count() == 1


def test_a_bad_idempotency_key_is_refused(api):
    response = api.post(
        "/v1/agents/my-agent/invoke", {"prompt": "a"}, headers={"Idempotency-Key": "x" * 300}
    )
    assert "Idempotency-Key" in assert_error(response, 400, "invalid_field_value")["message"]


def test_reads_ignore_the_idempotency_key(api):
    api.get("/v1/agents", headers={"Idempotency-Key": "r"})
    assert not IdempotencyRecord.objects.exists()


def test_every_answer_carries_the_rate_limit_headers(api, settings, window_clock):
    settings.API_RATE_LIMIT_PER_MINUTE = 5
    response = api.get("/v1/agents")
    assert response["X-RateLimit-Limit"] == "5"
    assert response["X-RateLimit-Remaining"] == "4"
    # The end of the clock minute the call was counted in. (Against the wall clock, this
    # failed when the minute turned between the call and the check.)
    reset = int(response["X-RateLimit-Reset"])
    assert reset % 60 == 0 and window_clock.time() < reset <= window_clock.time() + 60


def test_past_the_limit_calls_get_429_with_retry_after(api, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 3
    answers = [api.get("/v1/agents") for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    error = assert_error(answers[3], 429, "rate_limit_exceeded")
    assert "3 calls" in error["message"]
    assert 1 <= int(answers[3]["Retry-After"]) <= 61
    assert answers[3]["X-RateLimit-Remaining"] == "0"


def test_limits_are_per_token(api, make_key, project, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 1
    _, second = make_key(project, name="Second")
    assert api.get("/v1/agents").status_code == 200
    assert api.get("/v1/agents", token=second).status_code == 200
    assert api.get("/v1/agents").status_code == 429


def test_a_limit_of_zero_turns_limits_off(api, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 0
    answers = [api.get("/v1/agents") for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert all("X-RateLimit-Limit" not in a for a in answers)


def test_client_tokens_keep_their_idempotency_keys_to_themselves(api, project):
    from django.test import Client

    from tests.conftest import Api

    tokens = [api.post("/v1/client-tokens", {"context": {"n": n}}).json()["token"] for n in (1, 2)]
    first, second = (Api(Client(), t) for t in tokens)
    headers = {"Idempotency-Key": "signup-user-42"}
    body = {"prompt": "mine"}
    one = first.post("/client/agents/my-agent/invoke", body, headers=headers)
    other = second.post("/client/agents/my-agent/invoke", body, headers=headers)
    assert "Idempotent-Replayed" not in other
    assert other.json()["execution"]["id"] != one.json()["execution"]["id"]
    # The project's own server can still use the key a browser used.
    server = api.post("/v1/client-tokens", {"context": {}}, headers=headers)
    assert server.status_code == 201


def test_a_5xx_answer_is_not_kept_so_a_retry_acts(api, monkeypatch):
    import agents.runtime

    real = agents.runtime.agent_invoke
    monkeypatch.setattr("agents.api.agent_invoke", lambda **kw: 1 / 0)
    headers = {"Idempotency-Key": "retry-after-crash"}
    assert_error(
        api.post("/v1/agents/my-agent/invoke", {"prompt": "a"}, headers=headers),
        500,
        "internal_error",
    )
    assert not IdempotencyRecord.objects.exists()
    monkeypatch.setattr("agents.api.agent_invoke", real)
    retried = api.post("/v1/agents/my-agent/invoke", {"prompt": "a"}, headers=headers)
    assert retried.status_code == 200 and "Idempotent-Replayed" not in retried


def test_pruning_forgets_answers_older_than_24_hours_and_keeps_the_rest(project):
    now = timezone.now()
    for name, hours in (("stale", 24.001), ("fresh", 23)):
        IdempotencyRecord.objects.create(
            project=project,
            key=name,
            fingerprint="f",
            created_at=now - datetime.timedelta(hours=hours),
        )

    assert idempotency_records_prune(now=now) == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]
    assert idempotency_records_prune(now=now) == 0


def test_pruning_forgets_answers_dated_more_than_a_day_ahead(project):
    """Written while a host's clock ran far ahead: such a record would never be 24 hours
    old, so it would neither expire nor be pruned, and its key would replay for good."""
    now = timezone.now()
    # A host's clock a little ahead of the pruner's is no reason to forget ("near").
    for name, ahead in (("skewed", 24.001), ("near", 23)):
        IdempotencyRecord.objects.create(
            project=project,
            key=name,
            fingerprint="f",
            created_at=now + datetime.timedelta(hours=ahead),
        )

    assert idempotency_records_prune(now=now) == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["near"]


def stale_records(project, count: int, now: datetime.datetime) -> None:
    """`count` answers past their 24 hours and as many dated days ahead, besides one of
    today: what a busy project's retried writes leave for the daily prune."""
    for n in range(count):
        for side, days in (("stale", -2), ("ahead", 3)):
            IdempotencyRecord.objects.create(
                project=project,
                key=f"{side}-{n}",
                fingerprint="f",
                created_at=now + datetime.timedelta(days=days, minutes=n),
            )
    IdempotencyRecord.objects.create(project=project, key="fresh", fingerprint="f", created_at=now)


def test_pruning_a_backlog_deletes_it_all_a_bounded_batch_at_a_time(project, monkeypatch):
    monkeypatch.setattr("core.batched_delete.DELETE_BATCH", 3)
    now = timezone.now()
    stale_records(project, 7, now)
    with CaptureQueriesContext(connection) as queries:
        assert idempotency_records_prune(now=now) == 14
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    # 3 + 3 + 1 on each side, each by the keys of one batch, never by the condition that
    # matches the whole day: no one statement holds the table for the whole day.
    assert len(deletes) == 6 and all(" IN (" in sql for sql in deletes)
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]


def test_a_backlog_longer_to_delete_than_the_statement_timeout_is_pruned(project, monkeypatch):
    """On PostgreSQL, every DELETE that is not one bounded batch of keys runs into the
    statement timeout, as one over a day of a busy project's records would."""
    monkeypatch.setattr("core.batched_delete.DELETE_BATCH", 3)
    now = timezone.now()
    stale_records(project, 7, now)

    def whole_backlog(sql: str, params: Sequence[object]) -> bool:
        return sql.startswith("DELETE") and (" IN (" not in sql or len(params) > 3)

    with statements_time_out(whole_backlog):
        call_command("prune_idempotency_records", stdout=io.StringIO())
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]


def test_records_of_one_moment_across_batches_all_go(project, monkeypatch):
    """Each batch's read starts at the moment the last batch ended on, not after it: the
    records of that moment left for the next batch are read too."""
    monkeypatch.setattr("core.batched_delete.DELETE_BATCH", 3)
    now = timezone.now()
    moment = now - datetime.timedelta(days=2)
    for n in range(7):
        IdempotencyRecord.objects.create(
            project=project, key=f"stale-{n}", fingerprint="f", created_at=moment
        )
    IdempotencyRecord.objects.create(project=project, key="fresh", fingerprint="f", created_at=now)
    assert idempotency_records_prune(now=now) == 7
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]


def test_the_daily_command_says_how_many_answers_it_forgot(project):
    IdempotencyRecord.objects.create(
        project=project,
        key="stale",
        fingerprint="f",
        created_at=timezone.now() - datetime.timedelta(days=2),
    )
    out = io.StringIO()
    call_command("prune_idempotency_records", stdout=out)
    assert out.getvalue().strip() == "Removed 1 idempotency record."
    assert not IdempotencyRecord.objects.exists()


def test_another_token_of_the_project_gets_no_replay_and_nothing_acts_twice(api, project, make_key):
    """A replay skips what the view checks itself: here a key scoped to another agent
    would have been handed my-agent's output. Another token is refused instead."""
    _, scoped = make_key(project, name="Scoped", agent_names=["other"])
    headers = {"Idempotency-Key": "k1"}
    assert_ok(api.post("/v1/agents/my-agent/invoke", {"prompt": "secret"}, headers=headers))
    response = api.post(
        "/v1/agents/my-agent/invoke", {"prompt": "secret"}, headers=headers, token=scoped
    )
    message = assert_error(response, 400, "invalid_request")["message"]
    assert "another token of this project" in message
    assert "Idempotent-Replayed" not in response
    assert b"secret" not in response.content
    assert Execution.objects.count() == 1
    # The token that sent it still gets its answer again.
    again = api.post("/v1/agents/my-agent/invoke", {"prompt": "secret"}, headers=headers)
    assert again["Idempotent-Replayed"] == "true"


def test_a_claim_whose_request_never_finished_is_given_up_after_two_minutes(api):
    """A worker killed mid-request leaves its claim unanswered: a retry is told to wait,
    but not for 24 hours."""
    invoke = "/v1/agents/my-agent/invoke"
    for key in ("running", "died"):
        assert_ok(api.post(invoke, {"prompt": "a"}, headers={"Idempotency-Key": key}))
    # As a request still running, and one whose worker died 3 minutes ago, leave them.
    IdempotencyRecord.objects.filter(key="running").update(status=None, body="")
    IdempotencyRecord.objects.filter(key="died").update(
        status=None, body="", created_at=timezone.now() - datetime.timedelta(minutes=3)
    )
    busy = api.post(invoke, {"prompt": "a"}, headers={"Idempotency-Key": "running"})
    assert "still running" in assert_error(busy, 409, "idempotency_in_progress")["message"]
    retried = api.post(invoke, {"prompt": "a"}, headers={"Idempotency-Key": "died"})
    assert_ok(retried)
    assert "Idempotent-Replayed" not in retried
    assert IdempotencyRecord.objects.get(key="died").status == 200
    assert Execution.objects.count() == 3


def test_a_claim_dated_more_than_a_day_ahead_is_given_up_at_once_not_at_the_next_prune(api):
    """Written while a host's clock ran far ahead, its worker killed: the daily prune
    forgets it, but until then (up to a day) every retry was told 'still running', and
    the reminix SDK retries that for as long; a record the prune would forget is no
    record to answer with."""
    invoke = "/v1/agents/my-agent/invoke"
    assert_ok(api.post(invoke, {"prompt": "a"}, headers={"Idempotency-Key": "ahead"}))
    IdempotencyRecord.objects.filter(key="ahead").update(
        status=None, body="", created_at=timezone.now() + datetime.timedelta(days=2)
    )
    retried = api.post(invoke, {"prompt": "a"}, headers={"Idempotency-Key": "ahead"})
    assert_ok(retried)
    assert IdempotencyRecord.objects.get(key="ahead").status == 200


def test_a_retry_sent_while_the_first_still_runs_is_told_to_wait_and_retry(api, monkeypatch):
    """What a client that retries on its own (the reminix SDK: after a dropped connection,
    with the same key) needs to tell "wait, it is running" from a request it got wrong:
    a code of its own, idempotency_in_progress, and Retry-After. The SDK retries that
    code and nothing else on a 409; as invalid_request the retry was handed to the
    caller as a failure, though the first request went on to act, and a caller that then
    sent it again under a new key acted twice."""
    import agents.api

    headers = {"Idempotency-Key": "dropped-connection"}
    invoke = "/v1/agents/my-agent/invoke"
    real = agents.api.agent_invoke
    retries = []

    def first_still_running(**kwargs):
        retries.append(api.post(invoke, {"prompt": "once"}, headers=headers))
        return real(**kwargs)

    monkeypatch.setattr(agents.api, "agent_invoke", first_still_running)
    first = assert_ok(api.post(invoke, {"prompt": "once"}, headers=headers))
    (retry,) = retries
    error = assert_error(retry, 409, "idempotency_in_progress")
    assert "still running" in error["message"]
    assert retry["Retry-After"] == "1"
    # Retried as told, it gets the first answer.
    again = api.post(invoke, {"prompt": "once"}, headers=headers)
    assert again["Idempotent-Replayed"] == "true" and again.json() == first
    assert Execution.objects.count() == 1


def test_a_token_sent_as_the_idempotency_key_is_refused_and_never_stored(api):
    """The key is stored as sent, for 24 hours, and a token is never kept at rest
    (shared/CONTRACT.md): one pasted there (a client token used to make "one mint per
    browser" idempotent, a key in the wrong header) is refused as a token pasted into an
    agent's name is, before anything acts."""
    for token in (api.token, api.token.lower(), f"order-{api.token}"):
        response = api.post(
            "/v1/agents/my-agent/invoke", {"prompt": "a"}, headers={"Idempotency-Key": token}
        )
        error = assert_error(response, 400, "invalid_field_value")
        assert "Idempotency-Key" in error["message"] and "token" in error["message"]
        assert api.token[12:] not in response.content.decode()
    assert not IdempotencyRecord.objects.exists()
    assert not Execution.objects.exists()


def test_a_token_split_escaped_or_without_its_prefix_as_the_idempotency_key_is_never_stored(
    api,
):
    """As a token whole: with a space a copy put inside it, percent-escaped as a URL's
    encoder may leave it ("reminix%5Fsk%5F…": a working token to whoever decodes it), or
    its 36 characters after the prefix (which everyone knows), known by their checksum.
    Each was kept as the key for a day."""
    token = api.token
    for key in (
        f"{token[:18]} {token[18:]}",
        token.replace("_", "%5F"),
        token.replace("_", "%255F"),
        f"mint-{token[11:]}",
    ):
        response = api.post(
            "/v1/agents/my-agent/invoke", {"prompt": "a"}, headers={"Idempotency-Key": key}
        )
        error = assert_error(response, 400, "invalid_field_value")
        assert "Idempotency-Key" in error["message"] and "token" in error["message"]
        assert token[18:] not in response.content.decode()
    assert not IdempotencyRecord.objects.exists()
    assert not Execution.objects.exists()
    # An ordinary key, a UUID among them, is taken as ever.
    for key in ("order 42", "c3f1e6a2-3f4b-4c9e-9a1d-2b7e8f0a1c5d"):
        answer = api.post(
            "/v1/agents/my-agent/invoke", {"prompt": "a"}, headers={"Idempotency-Key": key}
        )
        assert_ok(answer)


def test_a_204_and_its_replay_are_the_same_empty_answer_with_no_content_type(api, admin):
    """A 204 has no content, so nothing to give a type to: it said text/html (Django's
    default), and its replay said application/json, so the same answer differed between
    the first try and the retry."""
    minted = assert_ok(api.post("/v1/client-tokens", {"context": {}}), 201)
    headers = {"Idempotency-Key": "revoke-1"}
    path = f"/v1/client-tokens/{minted['id']}"
    first = api.send("DELETE", path, headers=headers)
    again = api.send("DELETE", path, headers=headers)
    assert again["Idempotent-Replayed"] == "true"
    key = assert_ok(admin.post("/v1/api-keys", {"name": "Web"}), 201)
    revoked = admin.send("DELETE", f"/v1/api-keys/{key['id']}")
    for response in (first, again, revoked):
        assert response.status_code == 204 and response.content == b""
        assert "Content-Type" not in response
        assert response["X-Request-Id"].startswith("req_")


@pytest.mark.django_db(transaction=True)
def test_two_deploys_at_once_under_one_key_act_once_and_the_second_is_told_to_retry(
    api, monkeypatch
):
    """As above, with two connections on PostgreSQL: the first holds its claim (committed)
    while it deploys; the second, at that moment, is 409 idempotency_in_progress at once,
    not held up; retried once the first answered, it gets that answer."""
    import agents.api

    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: concurrency is shown on PostgreSQL.")
    headers = {"Idempotency-Key": "deploy-1"}
    body = {"description": "v1"}
    answers = []

    def first() -> None:
        answers.append(
            Api(Client(), api.token).send("PUT", "/v1/agents/bot", body, headers=headers)
        )

    thread, go, _, failures = paused_in_another_thread(
        monkeypatch, agents.api, "agent_deploy", first
    )
    try:
        busy = api.send("PUT", "/v1/agents/bot", body, headers=headers)
    finally:
        go.set()
        finished(thread)
    assert failures == []
    assert_error(busy, 409, "idempotency_in_progress")
    assert busy["Retry-After"] == "1"
    (created,) = answers
    assert created.status_code == 201
    again = api.send("PUT", "/v1/agents/bot", body, headers=headers)
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == created.json()


def test_an_answer_that_could_not_be_kept_undid_its_write_so_a_retry_acts_once(api):
    """The database went away between the write and keeping its answer (a commit landed,
    then the connection dropped): had the write stayed, the client, told 503, would retry
    and act twice. The write and its kept answer are one transaction: both or neither."""
    from agents.models import Agent

    table = IdempotencyRecord._meta.db_table

    def drop_while_keeping(execute, sql, params, many, context):
        if sql.startswith("UPDATE") and table in sql:
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    headers = {"Idempotency-Key": "deploy-once"}
    body = {"description": "v1"}
    with connection.execute_wrapper(drop_while_keeping):
        lost = api.send("PUT", "/v1/agents/bot", body, headers=headers)
    assert_error(lost, 503, "service_unavailable")
    assert not Agent.objects.filter(name="bot").exists()
    retried = api.send("PUT", "/v1/agents/bot", body, headers=headers)
    assert retried.status_code == 201  # made by the retry: the first call made nothing
    assert IdempotencyRecord.objects.get(key="deploy-once").status == 201


def test_a_write_that_fails_halfway_leaves_nothing_so_a_retry_acts_once(api, monkeypatch):
    """A view that wrote and then failed (a 500) is not kept, so a retry runs again: what
    the first run wrote must not stay, or the retry would act on top of it."""
    import agents.api
    from agents.models import Agent

    real = agents.api.agent_deploy

    def deploy_then_fail(*args, **kwargs):
        real(*args, **kwargs)
        raise RuntimeError("failed after the write")

    monkeypatch.setattr(agents.api, "agent_deploy", deploy_then_fail)
    headers = {"Idempotency-Key": "deploy-fails"}
    failed = api.send("PUT", "/v1/agents/bot", {"description": "v1"}, headers=headers)
    assert_error(failed, 500, "internal_error")
    assert not Agent.objects.filter(name="bot").exists()
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_commit_that_landed_but_whose_reply_was_lost_keeps_its_answer_for_the_retry(
    api, monkeypatch
):
    """The COMMIT of a write and its kept answer reached the database, and the connection
    dropped before its reply came back: the outcome is unknown to the server, which
    answers 503. The claim must not be given up then, for the answer it holds is the
    write's: deleted, the retry would act a second time (a second deploy, a second key)."""
    from agents.models import Agent
    from api import idempotency
    from audit.models import AuditEvent

    database = connections["default"]
    real_keep, real_commit = idempotency._keep, database.commit
    dropping = []

    def keep(record, response):
        real_keep(record, response)
        dropping.append(record.pk)

    def commit_then_drop():
        real_commit()
        if dropping:
            dropping.clear()
            raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(idempotency, "_keep", keep)
    monkeypatch.setattr(database, "commit", commit_then_drop)
    headers = {"Idempotency-Key": "deploy-once"}
    lost = api.send("PUT", "/v1/agents/bot", {"description": "v1"}, headers=headers)
    assert_error(lost, 503, "service_unavailable")
    monkeypatch.setattr(idempotency, "_keep", real_keep)
    retried = api.send("PUT", "/v1/agents/bot", {"description": "v1"}, headers=headers)
    assert retried.status_code == 201 and retried["Idempotent-Replayed"] == "true"
    assert Agent.objects.filter(name="bot").count() == 1
    assert not AuditEvent.objects.filter(action="agent.updated").exists()
