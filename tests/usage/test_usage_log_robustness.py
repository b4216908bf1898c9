"""Odd requests are logged safely, and one bad entry never stops the log for everyone."""

from dataclasses import replace

from django.utils import timezone

from core.write_behind import Buffer, Record
from tests.api.assertions import assert_error, assert_ok
from tests.conftest import usage_call
from usage.models import UsageDrop, UsageRecord
from usage.writer import UsageEntry


def entry(key, request_id: str, **changes) -> UsageEntry:
    call = usage_call(timezone.now(), key=key, method="GET", agent="", path="/v1/agents")
    return replace(call, request_id=request_id, **changes)


def test_a_made_up_method_is_answered_in_the_envelope_and_logged_as_other(api):
    response = api.send("ABCDEFGHIJKLMNOP", "/v1/agents")
    assert_error(response, 405, "invalid_request")
    assert UsageRecord.objects.get().method == "OTHER"
    api.get("/v1/agents")
    assert UsageRecord.objects.count() == 2


def test_a_nul_byte_in_the_path_or_user_agent_is_not_kept(api):
    response = api.get("/v1/x%00y", headers={"User-Agent": "evil\x00agent"})
    assert_error(response, 404, "not_found")
    row = UsageRecord.objects.get()
    assert "\x00" not in row.path and "\x00" not in row.user_agent
    assert row.path == "/v1/xy"


def test_one_entry_that_cannot_be_written_is_dropped_and_the_rest_are_written(api_key, caplog):
    key, _ = api_key
    buffer = Buffer()
    poison = entry(key, "req_poison", status=-5)  # breaks the column's check constraint
    buffer._records = [
        Record("usage", e.payload()) for e in (entry(key, "req_a"), poison, entry(key, "req_b"))
    ]
    assert buffer.flush() == 2
    assert set(UsageRecord.objects.values_list("request_id", flat=True)) == {"req_a", "req_b"}
    assert len(buffer) == 0
    assert "'usage' record cannot be written and is dropped" in caplog.text
    assert UsageDrop.objects.get().count == 1


def test_refused_calls_count_against_the_rate_limit_too(api, api_key, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 3
    api_key[0].revoke(by=None)
    answers = [api.get("/v1/agents").status_code for _ in range(4)]
    assert answers == [401, 401, 401, 429]
    wrong_path = [api.get("/v1/nothing-here").status_code for _ in range(2)]
    assert wrong_path == [429, 429]


def test_a_call_logged_while_the_database_was_down_is_counted_on_a_key_with_unreadable_json(
    api_key,
):
    """A call the API could not look up (the database did not answer) carries its token's
    hash, resolved when the entry is written by reading the tokens' rows whole: a key
    whose scopes hold JSON Python cannot read back (a number past int()'s 4,300 digits,
    put there by hand or by a restore) failed every batch with such a call in it, and the
    calls were dropped. Resolving reads no JSON."""
    from datetime import timedelta

    from django.db import connection

    from apikeys.models import ApiKey
    from apikeys.tokens import token_hash
    from usage.writer import usage_write

    key, secret = api_key
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {ApiKey._meta.db_table} SET agent_names = %s WHERE id = %s",  # noqa: S608
            ["[" + "7" * 5000 + "]", key.pk],
        )
    unlooked = replace(
        usage_call(timezone.now() - timedelta(minutes=1), status=503),
        token_digest=token_hash(secret),
    )

    usage_write([unlooked])

    assert UsageRecord.objects.get().api_key_id == key.pk


def test_a_usage_entry_that_cannot_be_handed_over_never_replaces_the_answer(
    api, monkeypatch, caplog
):
    from api import endpoint

    def broken(entry: UsageEntry) -> None:
        raise RuntimeError("the buffer is gone")

    monkeypatch.setattr(endpoint, "usage_defer", broken)
    response = api.post("/v1/agents/my-agent/invoke", {"prompt": "hi"})
    assert assert_ok(response)["output"] == "hi"
    assert f"usage entry for {response['X-Request-Id']} not recorded" in caplog.text
