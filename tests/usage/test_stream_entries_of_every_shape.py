"""`ingest_usage` against stream entries our API never writes (anyone with the Redis password
can add one): each bad entry or record is dropped and counted, never stops the ingest,
and the good calls around it are written and acknowledged."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core import write_behind
from core.write_behind import StreamIngest
from tests.conftest import usage_call
from tests.usage.test_write_behind import _timeout, ingest_with_the_database_down
from usage.models import ProjectUsageDay, ProjectUsageHour, UsageDrop, UsageHour, UsageRecord

LEAKED = "reminix_sk_" + "A1b2C3d4" * 5


@pytest.fixture
def stream(redis_store):
    def add(*fields: bytes | str) -> None:
        redis_store.round_trip(("XADD", write_behind.stream_key(), "*", *fields))

    return add


def record(key, called: str, **changes: object) -> bytes:
    payload = usage_call(timezone.now(), key=key, request_id=called).payload()
    payload.update(changes)
    return json.dumps(["usage", payload]).encode()


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param([b"r", b"\xff\xfe not utf-8"], id="not-utf-8"),
        pytest.param([b"x", b"[]"], id="no-record-field"),
        pytest.param([b"r", b'"usage"'], id="not-a-pair"),
        pytest.param([b"r", b'["usage", 5]'], id="payload-not-an-object"),
        pytest.param([b"r", b'["nobody", {}]'], id="unknown-channel"),
        pytest.param([b"r", json.dumps(["usage", {LEAKED: 1}]).encode()], id="token-as-field"),
        pytest.param([b"r", b"9" * 10_000], id="huge-number"),
        # Named like the mark the backlog's read puts in place of an entry of too many
        # records, but not one: int() of it stopped the ingest, at every start.
        pytest.param([b"\x00too many", b"many"], id="backlog-mark-not-a-count"),
        pytest.param([b"\x00too many", b"9" * 5_000], id="backlog-mark-huge-count"),
        pytest.param([b"\x00too many", "²".encode()], id="backlog-mark-other-digit"),
    ],
)
def test_an_unreadable_entry_is_dropped_and_the_calls_around_it_are_written(
    api_key, stream, redis_store, bad, caplog
):
    key, _ = api_key
    stream(b"r", record(key, "req_before"))
    stream(*bad)
    stream(b"r", record(key, "req_after"))

    stats = StreamIngest(consumer="test").run(once=True)

    assert set(UsageRecord.objects.values_list("request_id", flat=True)) == {
        "req_before",
        "req_after",
    }
    assert stats.dropped == 1
    (length,) = redis_store.round_trip(("XLEN", write_behind.stream_key()))
    assert length == 0
    assert LEAKED not in caplog.text


ODD_RECORDS = [
    {"created_at": "0001-01-01T00:00:00+00:00"},
    {"created_at": "9999-12-31T23:59:59.999999+00:00"},
    {"created_at": LEAKED},
    {"status": 2**63},
    {"latency_us": 2**63 - 1},
    {"latency_us": -(2**63)},
    {"project_id": 2**62},
    {"api_key_id": "one"},
    {"user_agent": None},
    {"ip": "not an address"},
    {"path": ["a", "list"]},
    {"user_agent": "x" * 5_000_000},
    {"request_id": LEAKED},
    {"surprise": LEAKED},
]


# Committed for real: a foreign key is checked at the commit.
@pytest.mark.django_db(transaction=True)
def test_records_that_cannot_be_written_are_dropped_and_the_rest_are_written(
    api_key, stream, redis_store, caplog
):
    key, _ = api_key
    for n, changes in enumerate(ODD_RECORDS):
        stream(b"r", record(key, f"req_before_{n}"), b"r", record(key, f"req_odd_{n}", **changes))
    stream(b"r", record(key, "req_last"))

    stats = StreamIngest(consumer="test").run(once=True)

    written = set(UsageRecord.objects.values_list("request_id", flat=True))
    assert {f"req_before_{n}" for n in range(len(ODD_RECORDS))} | {"req_last"} <= written
    assert stats.written + stats.dropped == 2 * len(ODD_RECORDS) + 1
    (length,) = redis_store.round_trip(("XLEN", write_behind.stream_key()))
    assert length == 0
    assert LEAKED[12:] not in caplog.text


def test_an_unreadable_record_loses_only_itself_not_the_others_of_its_entry(
    api_key, stream, redis_store
):
    """An entry holds all of a call's records; one of them unreadable (the entry was made
    by hand, or in part overwritten) cost the readable ones beside it too."""
    key, _ = api_key
    stream(b"r", record(key, "req_first"), b"r", b"\xff not json", b"r", record(key, "req_last"))

    stats = StreamIngest(consumer="test").run(once=True)

    assert set(UsageRecord.objects.values_list("request_id", flat=True)) == {
        "req_first",
        "req_last",
    }
    assert (stats.written, stats.dropped) == (2, 1)
    (length,) = redis_store.round_trip(("XLEN", write_behind.stream_key()))
    assert length == 0


def test_a_record_too_big_for_any_of_ours_is_dropped_before_it_can_stall_the_stream(
    api_key, stream, redis_store, monkeypatch
):
    """Ours are at most tens of kilobytes (agents.runtime.kept bounds an execution). One
    of hundreds of megabytes runs into the statement timeout (or PostgreSQL's size limit
    for a JSON value) alone, every time: that is taken for a database that cannot write
    now, so it waited, unacknowledged, and everything behind it waited for good."""
    from core.write_behind import MAX_RECORD_BYTES

    key, _ = api_key
    huge = "x" * MAX_RECORD_BYTES
    real = write_behind._sinks["usage"]

    def too_slow_for_huge(payloads):
        if any(p.get("user_agent") == huge for p in payloads):
            raise _timeout()
        real(payloads)

    monkeypatch.setitem(write_behind._sinks, "usage", too_slow_for_huge)
    monkeypatch.setattr(write_behind.time, "sleep", lambda seconds: None)
    stream(b"r", record(key, "req_before"))
    stream(b"r", record(key, "req_huge", user_agent=huge))
    stream(b"r", record(key, "req_after"))

    ingest = StreamIngest(consumer="test")
    ingest._create_group()
    for _ in range(3):
        ingest.step()

    assert set(UsageRecord.objects.values_list("request_id", flat=True)) == {
        "req_before",
        "req_after",
    }
    assert ingest.stats.dropped == 1
    (length,) = redis_store.round_trip(("XLEN", write_behind.stream_key()))
    assert length == 0


@pytest.mark.parametrize("offset", ["+05:30", "-09:45", "+13:59:59"])
def test_a_call_written_in_another_time_zone_counts_in_its_utc_hour_and_day(
    api_key, stream, offset
):
    """The API writes UTC; an entry in another zone (made by hand) was cut to the hour in
    its own: 23:45+05:30 (18:15 UTC) was counted in an hour that started at 17:30 UTC, in
    no hour a page asks for, and away from the hour its row is in."""
    key, _ = api_key
    at = (timezone.now() - timedelta(hours=2)).replace(minute=45, second=0, microsecond=0)
    zone = datetime.strptime(offset, "%z").tzinfo
    stream(b"r", record(key, "req_zoned", created_at=at.astimezone(zone).isoformat()))

    StreamIngest(consumer="test").run(once=True)

    call = UsageRecord.objects.get().created_at
    assert call == at
    hour = call.replace(minute=0)
    assert UsageHour.objects.get().hour == hour
    assert ProjectUsageHour.objects.get().start == hour
    assert ProjectUsageDay.objects.get().start == hour.replace(hour=0)


def test_an_entry_of_more_records_than_any_call_makes_is_dropped_with_one_line(
    api_key, stream, redis_store, caplog
):
    """Ours hold a call's records: its usage entry and its execution. One made by hand
    with a million unreadable records was read, logged and counted record by record: a
    million log lines, and a minute in which nobody's calls were written."""
    key, _ = api_key
    many = 1000
    stream(b"r", record(key, "req_before"))
    stream(*[b"r", b"x"] * many)
    stream(b"r", record(key, "req_after"))

    stats = StreamIngest(consumer="test").run(once=True)

    assert set(UsageRecord.objects.values_list("request_id", flat=True)) == {
        "req_before",
        "req_after",
    }
    assert stats.dropped == many
    dropped = [r for r in caplog.records if r.name == "core.write_behind"]
    assert len(dropped) == 1 and "too many records" in dropped[0].getMessage()
    (length,) = redis_store.round_trip(("XLEN", write_behind.stream_key()))
    assert length == 0


def test_once_drains_past_a_whole_read_of_unreadable_entries(
    api_key, stream, redis_store, monkeypatch
):
    """`ingest_usage --once` drains the stream: a read that wrote nothing because all it
    held was dropped is not the end of the stream, and the calls after it are written."""
    monkeypatch.setattr(write_behind, "READ_COUNT", 3)
    key, _ = api_key
    for _ in range(3):
        stream(b"x", b"no record here")
    stream(b"r", record(key, "req_after"))

    stats = StreamIngest(consumer="test").run(once=True)

    assert list(UsageRecord.objects.values_list("request_id", flat=True)) == ["req_after"]
    assert stats.dropped == 3
    (length,) = redis_store.round_trip(("XLEN", write_behind.stream_key()))
    assert length == 0


@pytest.mark.parametrize(
    "channel",
    [
        pytest.param("c" * 41, id="longer-than-the-drop-count-column"),
        pytest.param("usage\x00", id="nul"),
    ],
)
def test_a_record_of_an_unknown_channel_is_counted_once_and_not_retried_after_every_batch(
    api_key, stream, redis_store, caplog, channel
):
    """A record for a channel nobody writes is dropped and counted (UsageDrop). Counted
    under its name as given, a name the count's column refuses (over 40 characters; a NUL
    on PostgreSQL) failed the count, which was kept to be tried again after every later
    batch, for the life of the ingest: an ERROR and a failed INSERT each batch for each
    such name, and each forged name one more."""
    key, _ = api_key
    stream(b"r", json.dumps([channel, {}]).encode())
    StreamIngest(consumer="test").run(once=True)
    stream(b"r", record(key, "req_later"))
    caplog.clear()

    StreamIngest(consumer="test").run(once=True)

    assert UsageRecord.objects.filter(request_id="req_later").exists()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert write_behind.dropped_so_far() == {}
    assert UsageDrop.objects.get().count == 1


def test_an_unreadable_record_is_said_and_counted_once_however_long_the_database_is_away(
    api_key, stream, redis_store, caplog, monkeypatch
):
    """While the database is away nothing is acknowledged, and the ingest reads the same
    entries again every second. The unreadable record among them was logged (an ERROR)
    and counted as dropped at each of those reads: through an outage of an hour, 3,600
    lines and a count of 3,600 for one record."""
    key, _ = api_key
    stream(b"r", b"\xff not json", b"r", record(key, "req_kept"))
    real = write_behind._sinks["usage"]
    ingest = ingest_with_the_database_down(monkeypatch)
    for _ in range(3):
        assert ingest.step() == 0
    monkeypatch.setitem(write_behind._sinks, "usage", real)
    ingest.run(once=True)

    assert UsageRecord.objects.filter(request_id="req_kept").exists()
    assert ingest.stats.dropped == 1
    unreadable = [r for r in caplog.records if "on the stream is unreadable" in r.getMessage()]
    assert len(unreadable) == 1
    assert UsageDrop.objects.get(channel="stream").count == 1


@pytest.mark.parametrize("request_id", ["", "a/b", "req_\x00", "req_ 1", ".."])
def test_a_call_whose_request_id_no_address_can_hold_is_dropped_and_the_call_log_opens(
    api_key, stream, signed_in, project, request_id
):
    """The call log links each call by its request id (usage:project_call). One made by hand
    that no address can hold ("", "a/b") was written, and the project's call log, and every
    export or page listing it, was a 500 for each of its people from then on."""
    key, _ = api_key
    stream(b"r", record(key, "req_before"), b"r", record(key, "req_odd", request_id=request_id))

    stats = StreamIngest(consumer="test").run(once=True)

    assert list(UsageRecord.objects.values_list("request_id", flat=True)) == ["req_before"]
    assert stats.dropped == 1
    calls = reverse("usage:project_calls", kwargs={"slug": project.slug})
    assert signed_in.get(calls).status_code == 200


def three_calls_trimmed_while_the_database_was_away(
    api_key, stream, redis_store, monkeypatch
) -> StreamIngest:
    """Three calls read and held while the database was away, trimmed from the stream
    then, and one call after them; the ingest run once the database is back."""
    key, _ = api_key
    for n in range(3):
        stream(b"r", record(key, f"req_trimmed_{n}"))
    real = write_behind._sinks["usage"]
    ingest = ingest_with_the_database_down(monkeypatch)
    assert ingest.step() == 0
    redis_store.round_trip(("XTRIM", write_behind.stream_key(), "MAXLEN", "0"))
    stream(b"r", record(key, "req_after"))
    monkeypatch.setitem(write_behind._sinks, "usage", real)
    ingest.run(once=True)
    return ingest


def test_calls_trimmed_from_the_stream_while_the_database_was_away_are_said_and_counted(
    api_key, stream, redis_store, caplog, monkeypatch
):
    """While the database is away the ingest holds what it read, unacknowledged; an
    operator who trims the stream then (XTRIM, to free memory) takes those calls with it.
    Redis answers a later read of them with an id and no fields: the ingest passed over
    such an entry without a word, and left it pending for good, so the calls were lost
    with nothing logged or counted (and 2,000 of them hid every pending call behind them
    from the ingest's reads of its backlog)."""
    ingest = three_calls_trimmed_while_the_database_was_away(
        api_key, stream, redis_store, monkeypatch
    )

    assert list(UsageRecord.objects.values_list("request_id", flat=True)) == ["req_after"]
    assert ingest.stats.dropped == 3
    trimmed = [r for r in caplog.records if "gone from the stream" in r.getMessage()]
    assert len(trimmed) == 1 and "3 entries" in trimmed[0].getMessage()
    assert UsageDrop.objects.get(channel="stream").count == 3
    (pending,) = redis_store.round_trip(("XPENDING", write_behind.stream_key(), "ingest"))
    assert pending[0] == 0


def test_calls_trimmed_from_the_stream_are_in_the_overviews_warning_of_lost_calls(
    api_key, stream, redis_store, monkeypatch, signed_in, project
):
    """Each trimmed entry was an answered call (one entry a call), so the overview's
    figures are low by as many. Counted under the stream, not under the usage entries the
    overview counts, they left it saying nothing had been lost."""
    three_calls_trimmed_while_the_database_was_away(api_key, stream, redis_store, monkeypatch)

    page = signed_in.get(reverse("usage:project_usage", kwargs={"slug": project.slug}))
    assert page.context["overview"].dropped == 3


def test_calls_trimmed_from_a_dead_ingests_backlog_are_said_and_counted_when_taken_over(
    api_key, stream, redis_store, caplog, monkeypatch
):
    """The same for the backlog of an ingest whose host is gone: Redis takes the trimmed
    entries out of it as another ingest claims it, and names them; they were not said."""
    monkeypatch.setattr(write_behind, "CLAIM_IDLE_MS", 0)
    key, _ = api_key
    stream(b"r", record(key, "req_trimmed"))
    StreamIngest(consumer="gone")._create_group()
    redis_store.round_trip(
        ("XREADGROUP", "GROUP", "ingest", "gone", "STREAMS", write_behind.stream_key(), ">")
    )
    redis_store.round_trip(("XTRIM", write_behind.stream_key(), "MAXLEN", "0"))
    stream(b"r", record(key, "req_after"))

    stats = StreamIngest(consumer="test").run(once=True)

    assert list(UsageRecord.objects.values_list("request_id", flat=True)) == ["req_after"]
    assert stats.dropped == 1
    assert "gone from the stream" in caplog.text
    assert UsageDrop.objects.get(channel="stream").count == 1
    (pending,) = redis_store.round_trip(("XPENDING", write_behind.stream_key(), "ingest"))
    assert pending[0] == 0


@pytest.mark.parametrize(
    "called",
    ["9999-12-31T23:59:59.999999+00:00", "9999-12-31T23:00:00+00:00", "1999-12-31T23:59:59+00:00"],
)
def test_a_call_dated_outside_the_years_the_dashboard_shows_is_dropped(
    api_key, stream, signed_in, project, called
):
    """The API dates a call by its own clock. One made by hand in year 9999 was written
    (PostgreSQL's default partition takes any day, and retention never reaches it), and
    from then on the key's call log was a 500 whenever it was narrowed to that call's
    address or to failed calls: the page's bounds, one hour or one microsecond past the
    key's last such call, passed Python's last date. Every time field of the dashboard
    takes the years 2000 to 2999 (core.forms); a call outside them is dropped."""
    key, _ = api_key
    stream(
        b"r",
        record(key, "req_before", status=500),
        b"r",
        record(key, "req_far", created_at=called, status=500),
    )

    stats = StreamIngest(consumer="test").run(once=True)

    assert list(UsageRecord.objects.values_list("request_id", flat=True)) == ["req_before"]
    assert stats.dropped == 1
    log = reverse("usage:api_key_usage", kwargs={"slug": project.slug, "key_id": key.pk})
    for narrowed in ({"ip": "203.0.113.7"}, {"outcome": "server_error"}):
        assert signed_in.get(log, narrowed).status_code == 200


@pytest.mark.parametrize("whose", ["key", "client_token"])
def test_a_call_naming_another_projects_token_is_dropped_not_shown_in_this_project(
    api_key, stream, signed_in, project, make_project, make_key, make_user, whose
):
    """The API names a call's project from its token. An entry made by hand that names
    this project with another project's key (or client token) was written as this
    project's call, and its call log then showed the other project's key: its name and
    its hint, to every member here."""
    from apikeys.services import client_token_create

    key, _ = api_key
    elsewhere = make_project(make_user(email="them@example.com"), name="Theirs")
    theirs, _ = make_key(elsewhere, name="Their billing key")
    token, _ = client_token_create(project=elsewhere, api_key=theirs, context={})
    stolen = {"api_key_id": theirs.pk, "project_id": project.pk}
    if whose == "client_token":
        stolen |= {"client_token_id": token.pk, "token_kind": "client_token", "api_key_id": key.pk}
    stream(b"r", record(key, "req_before"), b"r", record(key, "req_theirs", **stolen))

    stats = StreamIngest(consumer="test").run(once=True)

    assert list(UsageRecord.objects.values_list("request_id", flat=True)) == ["req_before"]
    assert stats.dropped == 1
    page = signed_in.get(reverse("usage:project_calls", kwargs={"slug": project.slug}))
    assert "Their billing key" not in page.content.decode()


def test_a_call_naming_a_strangers_personal_token_by_its_hash_is_not_shown_in_this_project(
    api_key, stream, signed_in, project, make_user
):
    """A call the API could not identify (the database was down) carries its token's hash,
    resolved to the token when written, and no project. An entry made by hand naming this
    project with the hash of a stranger's PAT (read off the stream in an outage) passed the
    stream's check, naming no token, and was then written as this project's call by the
    stranger's token: its name, hint and owner on this project's pages."""
    from apikeys.services import personal_token_create

    key, _ = api_key
    stranger = make_user(email="stranger@example.com", name="Stranger Danger")
    theirs, _ = personal_token_create(user=stranger, name="Their CI token", permissions=["read"])
    forged = {"api_key_id": None, "token_kind": "", "token_digest": theirs.token_hash}
    stream(b"r", record(key, "req_theirs", **forged))

    StreamIngest(consumer="test").run(once=True)

    assert not UsageRecord.objects.filter(project=project, personal_token=theirs).exists()
    for name in ("usage:project_calls", "usage:project_usage"):
        page = signed_in.get(reverse(name, kwargs={"slug": project.slug})).content.decode()
        assert "Their CI token" not in page and "Stranger" not in page


def test_the_apis_own_calls_by_every_kind_of_client_token_pass_the_projects_check(
    api, admin, api_key, user, redis_store, settings
):
    """The check that drops an entry naming another project's key or client token (or
    agent) must never drop a call the API logged: a client token minted by a PAT (no key,
    its PAT beside it), one minted by a key rolled since (its old secret still in its
    overlap), the PAT's and the key's own calls that minted them, and the executions of
    the agent that each of them invoked or chatted with."""
    from django.test import Client

    from agents.models import Execution
    from apikeys.services import api_key_roll
    from tests.api.assertions import assert_ok
    from tests.conftest import Api

    settings.USAGE_FLUSH_SECONDS = 3600  # as in production: on the stream, not written yet
    key, _ = api_key
    browser = Api(Client(), None)
    by_pat = assert_ok(admin.post("/v1/client-tokens", {"context": {}}), 201)["token"]
    by_key = assert_ok(api.post("/v1/client-tokens", {"context": {}}), 201)["token"]
    api_key_roll(api_key=key, by=user, overlap=timedelta(hours=1))
    assert_ok(browser.get("/client/token", token=by_pat))
    assert_ok(browser.get("/client/token", token=by_key))
    invoke, chat = "/v1/agents/my-agent/invoke", "/v1/agents/my-agent/chat"
    assert_ok(api.post(invoke, {"prompt": "by the key"}))
    assert_ok(admin.post(chat, {"messages": [{"role": "user", "content": "by the PAT"}]}))
    for token in (by_pat, by_key):
        assert_ok(browser.post("/client/agents/my-agent/invoke", {"prompt": "hi"}, token=token))
    assert not UsageRecord.objects.exists() and not Execution.objects.exists()

    stats = StreamIngest(consumer="test").run(once=True)

    assert stats.dropped == 0
    logged = UsageRecord.objects.filter(client_token__isnull=False)
    assert logged.filter(personal_token__isnull=False, api_key__isnull=True).exists()
    assert logged.filter(api_key=key).exists()
    assert UsageRecord.objects.count() == 8
    assert set(Execution.objects.values_list("api_key_id", flat=True)) == {key.pk, None}
    assert Execution.objects.filter(agent__project=api_key[0].project).count() == 4
    assert stats.written == 12


def test_a_key_or_pat_sent_to_the_client_api_is_logged_on_it_through_the_stream(
    api_key, user, redis_store, settings
):
    """Refused before any lookup, such a call carries the hash of its token on the stream,
    and the ingest counts it on the key (its project) or the PAT: none is dropped as
    naming no project, none left without its token."""
    from django.test import Client

    from apikeys.services import personal_token_create
    from tests.api.assertions import assert_error
    from tests.conftest import Api

    settings.USAGE_FLUSH_SECONDS = 3600  # as in production: on the stream, not written yet
    key, secret = api_key
    pat_row, pat = personal_token_create(user=user, name="CLI")
    for token in (secret, pat):
        browser = Api(Client(), token)
        assert_error(browser.get("/client/token"), 403, "insufficient_permissions")
    assert not UsageRecord.objects.exists()

    stats = StreamIngest(consumer="test").run(once=True)

    assert (stats.dropped, stats.written) == (0, 2)
    assert UsageRecord.objects.get(api_key=key).project_id == key.project_id
    assert UsageRecord.objects.get(personal_token=pat_row).path == "/client/token"


def _bytes_in(reply: object) -> int:
    if isinstance(reply, bytes):
        return len(reply)
    if isinstance(reply, list | tuple):
        return sum(_bytes_in(part) for part in reply)
    return 0


def test_an_entry_too_big_to_read_in_time_is_left_in_redis_and_the_rest_written(
    api_key, stream, redis_store, monkeypatch
):
    """A read of the stream waits 2 s for its reply: about 250 MB at a gigabit. An entry
    made by hand bigger than that (Redis takes 512 MB an argument) made the read time out;
    its entries were delivered all the same, so the ingest read its backlog next, which
    held it again, and timed out again, for good: nobody's calls were written. (Here a
    reply over 2 MB stands for one too big to arrive in time.)"""
    from core.shared_store import StoreUnavailable

    key, _ = api_key
    stream(b"r", record(key, "req_before"))
    stream(b"r", b"x" * 3_000_000)
    stream(b"r", record(key, "req_after"))
    real = redis_store.round_trip

    def in_time(*commands, timeout=None):
        replies = real(*commands, timeout=timeout)
        if _bytes_in(replies) > 2_000_000:
            raise StoreUnavailable("Timeout reading from socket")
        return replies

    monkeypatch.setattr(redis_store, "round_trip", in_time)
    ingest = StreamIngest(consumer="test")
    ingest._create_group()
    for _ in range(4):
        try:
            ingest.step()
        except StoreUnavailable:
            ingest._backlog = True  # as run() does

    assert set(UsageRecord.objects.values_list("request_id", flat=True)) == {
        "req_before",
        "req_after",
    }
    assert ingest.stats.dropped == 1
    (length,) = real(("XLEN", write_behind.stream_key()))
    assert length == 0


def test_the_backlog_is_read_a_bounded_part_at_a_time_and_entries_of_too_many_records_dropped(
    api_key, stream, redis_store, monkeypatch
):
    """The backlog's read (after a read whose reply was lost) brings over at most about
    BACKLOG_READ_BYTES, the rest at the next read, and says of an entry of too many
    records only how many it held."""
    monkeypatch.setattr(write_behind, "BACKLOG_READ_BYTES", 10)
    key, _ = api_key
    stream(b"r", record(key, "req_first"))
    stream(*[b"r", b"x"] * 1000)
    stream(b"r", record(key, "req_second"), b"r", record(key, "req_third"))
    ingest = StreamIngest(consumer="test")
    ingest._create_group()
    ingest._xreadgroup(">", block=False)  # delivered to us; the reply is "lost" here

    reads = [ingest.step() for _ in range(3)]

    assert reads == [1, 2, 0]
    assert ingest.stats.dropped == 1000
    assert set(UsageRecord.objects.values_list("request_id", flat=True)) == {
        "req_first",
        "req_second",
        "req_third",
    }
    (length,) = redis_store.round_trip(("XLEN", write_behind.stream_key()))
    assert length == 0
