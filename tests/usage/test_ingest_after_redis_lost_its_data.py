"""`ingest_usage` when Redis loses its data while the ingest runs (a restart without
persistence, FLUSHDB, the stream key deleted): the consumer group goes with the stream,
and the workers' next XADD makes a new stream without one."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.utils import timezone

from core import write_behind
from core.shared_store import StoreUnavailable
from core.write_behind import StreamIngest
from tests.conftest import usage_call
from usage.models import UsageRecord


def _add(store, key, request_id: str) -> None:
    payload = usage_call(timezone.now(), key=key, request_id=request_id).payload()
    store.round_trip(
        ("XADD", write_behind.stream_key(), "*", "r", json.dumps(["usage", payload]).encode())
    )


def test_calls_logged_after_redis_lost_the_stream_are_still_ingested(api_key, redis_store):
    """The ingest made its group once, at start. After Redis lost it, every read was
    refused (NOGROUP) and taken for "nothing to read": the calls piled up on the new
    stream, never written, while the ingest asked again and again without pause."""
    key, _ = api_key
    ingest = StreamIngest(consumer="test")
    ingest._create_group()
    _add(redis_store, key, "req_before")
    assert ingest.step() == 1

    redis_store.round_trip(("DEL", write_behind.stream_key()))  # Redis lost its data
    _add(redis_store, key, "req_after")
    for _ in range(3):
        ingest.step()

    assert set(UsageRecord.objects.values_list("request_id", flat=True)) == {
        "req_before",
        "req_after",
    }
    (length,) = redis_store.round_trip(("XLEN", write_behind.stream_key()))
    assert length == 0


def test_a_read_redis_refuses_is_waited_out_not_taken_for_an_empty_stream(api_key, redis_store):
    """Any other refusal (here the key holds something else) read as "nothing new", so the
    ingest asked again at once, without end; now it backs off as from a Redis away."""
    ingest = StreamIngest(consumer="test")
    ingest._backlog = False
    redis_store.round_trip(("SET", write_behind.stream_key(), "not a stream"))

    with pytest.raises(StoreUnavailable):
        ingest.step()


def test_an_ingest_started_while_redis_is_away_still_stops_when_told(redis_store, monkeypatch):
    """SIGTERM sets `stopping`; making the consumer group waited for Redis without looking
    at it, so `make serve` (or systemd) could not stop an ingest whose Redis was down."""

    def away(*commands, timeout=None):
        raise StoreUnavailable("Connection refused")

    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            ingest.stopping = True  # SIGTERM arrives
        assert len(waits) < 10, "the ingest did not stop"

    ingest = StreamIngest(consumer="test")
    monkeypatch.setattr(ingest.store, "round_trip", away)
    monkeypatch.setattr(write_behind.time, "sleep", sleep)

    stats = ingest.run()

    assert stats.batches == 0


def _consumers(store) -> dict[str, int]:
    (reply,) = store.round_trip(("XINFO", "CONSUMERS", write_behind.stream_key(), "ingest"))
    infos = [dict(zip(entry[::2], entry[1::2], strict=True)) for entry in reply]
    return {info[b"name"].decode(): int(info[b"pending"]) for info in infos}


def test_an_ingest_starting_forgets_consumers_long_gone_with_nothing_pending(
    api_key, redis_store, monkeypatch
):
    """Each consumer is named after its host: containers with a new name at each deploy
    left one more in the group every time, for good."""
    key, _ = api_key
    StreamIngest(consumer="test")._create_group()
    _add(redis_store, key, "req_read_and_done")
    _add(redis_store, key, "req_read_not_done")
    stream = write_behind.stream_key()
    for old_host in ("old-host-1", "old-host-2"):  # each reads one entry
        redis_store.round_trip(
            ("XREADGROUP", "GROUP", "ingest", old_host, "COUNT", "1", "STREAMS", stream, ">")
        )
    (pending,) = redis_store.round_trip(
        ("XPENDING", stream, "ingest", "-", "+", "10", "old-host-1")
    )
    redis_store.round_trip(("XACK", stream, "ingest", pending[0][0]))
    assert _consumers(redis_store) == {"old-host-1": 0, "old-host-2": 1}

    monkeypatch.setattr(write_behind, "FORGET_IDLE_MS", 0)
    StreamIngest(consumer="new-host").run(once=True)

    consumers = _consumers(redis_store)
    assert "old-host-1" not in consumers  # nothing pending: forgotten
    # old-host-2 holds a record not yet acknowledged: kept, for another consumer to take
    # over once it has been silent CLAIM_IDLE_MS (nothing of it is lost).
    assert consumers["old-host-2"] == 1 and "new-host" in consumers


def test_a_group_redis_refuses_to_make_again_is_waited_out_not_the_end_of_the_ingest(
    settings, monkeypatch
):
    """Redis lost the stream and, asked to make the group again, refuses that too (a
    replica after a failover: READONLY; a full Redis: OOM). The refusal escaped the ingest
    loop as a RuntimeError and the process ended: every call after it piled up in Redis
    with nobody to write it until someone restarted `ingest_usage` (make serve does not).
    It is waited out like any other refusal; the group is asked for again next time."""
    from redis.exceptions import ResponseError

    settings.REDIS_URL = "redis://127.0.0.1:6379/7"  # (never reached: every reply is ours)

    def refused(*commands, timeout=None):
        (command,) = commands
        if command[0] in ("XREADGROUP", "EVAL"):  # (EVAL: the backlog's read)
            return [ResponseError("NOGROUP No such key or consumer group")]
        assert command[:2] == ("XGROUP", "CREATE")
        return [ResponseError("READONLY You can't write against a read only replica.")]

    ingest = StreamIngest(consumer="test")
    monkeypatch.setattr(ingest.store, "round_trip", refused)

    with pytest.raises(StoreUnavailable):
        ingest.step()


def test_a_silent_consumer_whose_name_is_not_utf8_is_forgotten_too(settings, monkeypatch):
    """Redis names a consumer with any bytes. The name was decoded with replacement
    characters and sent back so: Redis knew no such consumer, and that one stayed for good."""
    settings.REDIS_URL = "redis://127.0.0.1:6379/7"  # (never reached: every reply is ours)
    sent = []

    def replies(*commands, timeout=None):
        (command,) = commands
        sent.append(command)
        if command[:2] == ("XINFO", "CONSUMERS"):
            silent = write_behind.FORGET_IDLE_MS
            return [
                [
                    [b"name", b"old-\xff-host", b"pending", 0, b"idle", silent],
                    [b"name", b"new-host", b"pending", 0, b"idle", silent],
                ]
            ]
        return [0]

    ingest = StreamIngest(consumer="new-host")
    monkeypatch.setattr(ingest.store, "round_trip", replies)

    ingest._forget_idle_consumers()

    deleted = [command[-1] for command in sent if command[:2] == ("XGROUP", "DELCONSUMER")]
    assert deleted == [b"old-\xff-host"]  # and never this ingest's own name


def test_a_database_away_for_minutes_is_said_once_a_minute_and_when_it_is_back(
    settings, monkeypatch, caplog
):
    """The ingest waited out a database outage in silence: nothing in its log said that
    calls were piling up in Redis, nor when they were written again."""
    from types import SimpleNamespace

    from core.write_behind import Record, WriteResult

    settings.REDIS_URL = "redis://127.0.0.1:6379/7"  # (never reached: every reply is ours)
    record = Record("usage", {"n": 1})
    away = True

    def write(records, *, from_stream=False):
        return WriteResult(waiting=list(records)) if away else WriteResult(written=len(records))

    clock = SimpleNamespace(seconds=1000.0)
    this_thread = threading.current_thread()

    def sleep(seconds: float) -> None:
        if threading.current_thread() is this_thread:
            clock.seconds += seconds
        else:  # a worker's flush thread left by another test: its own time, as before
            time.sleep(seconds)

    ingest = StreamIngest(consumer="test")
    monkeypatch.setattr(ingest, "_read", lambda: [(b"1-0", [b"r", record.encoded()])])
    monkeypatch.setattr(ingest.store, "round_trip", lambda *commands, timeout=None: [1, 1])
    monkeypatch.setattr(write_behind, "write", write)
    monkeypatch.setattr(
        write_behind, "time", SimpleNamespace(monotonic=lambda: clock.seconds, sleep=sleep)
    )
    with caplog.at_level("INFO", logger="core.write_behind"):
        for _ in range(600):  # ten minutes of tries, one a second
            ingest.step()
        away = False
        ingest.step()
        ingest.step()
    said = [r.getMessage() for r in caplog.records if r.name == "core.write_behind"]
    assert said[0] == "The database does not answer: the usage stream's records wait in Redis"
    assert said[1] == "The database has not answered for 60 s: the records wait in Redis"
    assert said[-1] == "The database answers again, after 600 s: writing the records"
    assert len(said) == 11
