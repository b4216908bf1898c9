"""`ingest_usage` when Redis loses its data while the ingest runs (a restart without
persistence, FLUSHDB, the stream key deleted): the consumer group goes with the stream,
and the workers' next XADD makes a new stream without one."""

from __future__ import annotations

import json

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
