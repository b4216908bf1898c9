"""Usage entries and executions written after the answer: through Redis and the ingest
process when there is a shared store, through the worker's buffer when there is not, and
never lost to a database that is down or slow."""

from __future__ import annotations

import time

import pytest
from django.db import OperationalError

from agents.models import Execution
from core import write_behind
from core.write_behind import Buffer, Record, StreamIngest
from tests.api.assertions import assert_ok
from usage.models import ProjectUsageHour, UsageHour, UsageRecord

INVOKE = "/v1/agents/my-agent/invoke"


def ingest_all() -> write_behind.IngestStats:
    return StreamIngest(consumer="test").run(once=True)


@pytest.fixture
def deferred(settings):
    """As in production: records are written after the answer, not before it."""
    settings.USAGE_FLUSH_SECONDS = 3600


def test_with_redis_an_answered_call_waits_on_the_stream_until_ingested(api, redis_store, deferred):
    answer = assert_ok(api.post(INVOKE, {"prompt": "hi"}))
    assert not UsageRecord.objects.exists() and not Execution.objects.exists()

    stats = ingest_all()

    assert stats.written == 2  # the usage entry and the execution
    assert UsageRecord.objects.get().path == INVOKE
    assert Execution.objects.get().public_id == answer["execution"]["id"]
    assert UsageHour.objects.get().requests == 1
    (length,) = redis_store.round_trip(("XLEN", write_behind.stream_key()))
    assert length == 0  # acknowledged and removed after the commit


def test_once_caught_up_the_ingest_lets_the_next_batch_gather(api, redis_store, settings):
    """Issue 9's bench: reading again the moment a batch was written made batches of two or
    three calls under load, each paying a transaction. Once caught up, the ingest waits
    USAGE_FLUSH_SECONDS, and what arrives meanwhile is written in one batch."""
    settings.USAGE_FLUSH_SECONDS = 0.25
    assert_ok(api.post(INVOKE, {"prompt": "first"}))
    ingest = StreamIngest(consumer="test")
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 1:  # calls answered while the ingest waits
            for n in range(5):
                assert_ok(api.post(INVOKE, {"prompt": f"meanwhile {n}"}))
        else:
            ingest.stopping = True

    real_step, steps = ingest.step, []

    def step() -> int:
        steps.append(True)
        ingest.stopping = len(steps) >= 3  # never more than three reads, whatever happens
        return real_step()

    ingest._wait = wait  # type: ignore[method-assign]
    ingest.step = step  # type: ignore[method-assign]
    stats = ingest.run()

    assert waits == [0.25, 0.25]
    assert (stats.batches, stats.written) == (2, 2 + 5 * 2)  # the five calls: one batch
    assert UsageRecord.objects.count() == 6 and Execution.objects.count() == 6


def test_a_batch_written_twice_is_counted_once(api, redis_store, deferred):
    assert_ok(api.post(INVOKE, {"prompt": "hi"}))
    (reply,) = redis_store.round_trip(("XRANGE", write_behind.stream_key(), "-", "+"))
    records = [Record.decoded(data) for _, fields in reply for data in fields[1::2]]

    write_behind.write(records)
    write_behind.write(records)  # an acknowledgement lost after the commit

    assert UsageRecord.objects.count() == 1
    assert Execution.objects.count() == 1
    assert UsageHour.objects.get().requests == 1


def ingest_with_the_database_down(monkeypatch: pytest.MonkeyPatch) -> StreamIngest:
    """An ingest whose usage writer finds the database down, and that does not sleep
    between its tries."""

    def down(payloads):
        raise OperationalError("the database is down")

    monkeypatch.setitem(write_behind._sinks, "usage", down)
    monkeypatch.setattr(write_behind.time, "sleep", lambda seconds: None)
    ingest = StreamIngest(consumer="test")
    ingest._create_group()
    return ingest


def test_while_the_database_is_down_the_stream_keeps_everything_and_nothing_is_acked(
    api, redis_store, deferred, monkeypatch
):
    for _ in range(3):
        assert_ok(api.post(INVOKE, {"prompt": "hi"}))
    sinks = dict(write_behind._sinks)
    ingest = ingest_with_the_database_down(monkeypatch)
    assert ingest.step() == 0
    assert ingest.stats.waits == 1 and not UsageRecord.objects.exists()

    monkeypatch.setitem(write_behind._sinks, "usage", sinks["usage"])
    ingest.run(once=True)
    assert UsageRecord.objects.count() == 3


def test_without_redis_the_buffer_keeps_what_the_database_refuses_until_it_answers(
    api_key, monkeypatch
):
    from tests.conftest import usage_call

    buffer = Buffer()
    buffer._records = [Record("usage", usage_call(_now(), key=api_key[0]).payload())]
    real = write_behind._sinks["usage"]
    monkeypatch.setitem(write_behind._sinks, "usage", _fails_with(OperationalError))
    assert buffer.flush() == 0
    assert len(buffer) == 1  # kept, not dropped

    monkeypatch.setitem(write_behind._sinks, "usage", real)
    assert buffer.flush() == 1
    assert UsageRecord.objects.count() == 1


def test_a_database_going_down_part_way_through_a_retry_loses_nobody(api_key, monkeypatch):
    """The old buffer dropped every entry that failed once another one had succeeded: a
    database recovering (or failing) part-way through a retry lost the rest."""
    from django.db import IntegrityError

    from tests.conftest import usage_call

    buffer = Buffer()
    buffer._records = [
        Record("usage", usage_call(_now(), key=api_key[0], request_id=f"req_{n}").payload())
        for n in range(4)
    ]
    real = write_behind._sinks["usage"]
    calls = {"n": 0}

    def flaky(payloads):
        calls["n"] += 1
        if calls["n"] == 1:
            raise IntegrityError("one of these is bad")  # so: one by one
        if calls["n"] in (3, 4):
            raise OperationalError("the database went away")
        real(payloads)

    monkeypatch.setitem(write_behind._sinks, "usage", flaky)
    assert buffer.flush() == 2
    assert len(buffer) == 2  # the two that met the outage wait; nothing was dropped
    assert write_behind.dropped_so_far() == {}
    monkeypatch.setitem(write_behind._sinks, "usage", real)
    assert buffer.flush() == 2
    assert UsageRecord.objects.count() == 4


def test_one_bad_record_costs_its_batch_a_few_writes_not_one_per_record(api_key, monkeypatch):
    """A record that fails on its content (one made by hand on the stream) sent the whole
    batch, up to 2,000 calls of every tenant, to be written one by one: a transaction
    each, so one such record a batch cut the ingest to a fraction of its pace. The batch
    is written in halves, down to the record that fails."""
    from tests.conftest import usage_call

    key, _ = api_key
    records = [
        Record("usage", usage_call(_now(), key=key, request_id=f"req_{n}").payload())
        for n in range(64)
    ]
    records[40].payload["status"] = 2**63  # no status a column can hold
    real = write_behind._sinks["usage"]
    calls = []

    def counted(payloads):
        calls.append(len(payloads))
        real(payloads)

    monkeypatch.setitem(write_behind._sinks, "usage", counted)
    result = write_behind.write(records)

    assert (result.written, result.dropped) == (63, 1)
    assert UsageRecord.objects.count() == 63
    assert len(calls) <= 2 * 6 + 1  # a write and its two halves at each of log2(64) levels


def test_the_buffer_is_bounded_and_counts_what_it_drops(api_key, monkeypatch):
    from tests.conftest import usage_call

    monkeypatch.setattr(write_behind, "MAX_BUFFERED", 3)
    monkeypatch.setitem(write_behind._sinks, "usage", _fails_with(OperationalError))
    buffer = Buffer()
    for n in range(5):
        buffer._records.append(
            Record("usage", usage_call(_now(), key=api_key[0], request_id=f"r{n}").payload())
        )
    buffer.flush()
    assert len(buffer) == 3
    assert write_behind.dropped_so_far()[("usage", "buffer full")] == 2


def test_a_reply_lost_with_the_connection_puts_the_record_back_in_the_buffer(
    api, redis_store, deferred, monkeypatch
):
    assert_ok(api.post(INVOKE, {"prompt": "hi"}))
    link = redis_store._link()
    # The execution and the usage entry, sent as one stream entry, its reply unread.
    assert len(link.unread) == 1
    link.connection.disconnect()  # Redis went away before the replies were read
    monkeypatch.setattr(write_behind.buffer, "_records", [])
    redis_store._failed(link, OSError("connection reset"))
    assert len(write_behind.buffer) == 2


def test_the_exit_hand_over_waits_for_a_flush_in_flight(monkeypatch):
    """Found by the fault tests: at exit, the background thread had taken the buffer and
    was writing it; the hand-over found the buffer empty, the process exited, and the
    batch died with the thread, unlogged. The hand-over now waits for that flush."""
    import threading

    written: list[int] = []
    in_sink, release = threading.Event(), threading.Event()

    def slow_sink(payloads):
        in_sink.set()
        release.wait(5)
        written.extend(p["n"] for p in payloads)

    monkeypatch.setitem(write_behind._sinks, "slow", slow_sink)
    buffer = Buffer()
    buffer._records.extend(Record("slow", {"n": n}) for n in range(3))
    flusher = threading.Thread(target=buffer.flush)
    flusher.start()
    assert in_sink.wait(5)  # the background flush holds the records now
    exiting = threading.Thread(target=buffer.hand_over)
    exiting.start()
    exiting.join(0.2)
    # Returning now would let the process exit under the flush in flight.
    assert exiting.is_alive()
    release.set()
    flusher.join(5)
    exiting.join(5)
    assert sorted(written) == [0, 1, 2]


def test_records_delivered_in_a_reply_that_was_lost_are_read_again(
    api, redis_store, deferred, monkeypatch
):
    """Found by the fault tests: Redis stalled while the ingest's read was in flight; Redis
    had delivered the records (they were pending for this consumer), the reply never came,
    and the ingest went on reading only new records: those waited for good."""
    from core.shared_store import StoreUnavailable

    assert_ok(api.post(INVOKE, {"prompt": "hi"}))
    ingest = StreamIngest(consumer="test")
    ingest._create_group()
    ingest._backlog = False  # past its start: it reads new records
    ingest._xreadgroup(">", block=False)  # delivered to us; the reply is "lost" here
    real_step, failed = ingest.step, []

    def step_after_a_failure() -> int:
        if not failed:
            failed.append(True)
            raise StoreUnavailable("Timeout reading from socket")
        return real_step()

    monkeypatch.setattr(ingest, "step", step_after_a_failure)
    monkeypatch.setattr(write_behind.time, "sleep", lambda seconds: None)
    ingest.run(once=True)
    assert UsageRecord.objects.count() == 1 and Execution.objects.count() == 1


def _fails_with(error: type[Exception]):
    def sink(payloads):
        raise error("refused")

    return sink


def _now():
    from django.utils import timezone

    return timezone.now()


def test_an_entry_nested_too_deep_to_read_is_dropped_and_the_rest_written(
    api, redis_store, deferred
):
    """Anyone who can write to the stream could add an entry that json cannot read without
    running out of stack. It must not stop the ingest (and every ingest after it) for all
    projects: it is dropped and counted, and the calls beside it are written."""
    assert_ok(api.post(INVOKE, {"prompt": "before"}))
    redis_store.round_trip(("XADD", write_behind.stream_key(), "*", "r", b"[" * 200_000))
    assert_ok(api.post(INVOKE, {"prompt": "after"}))

    stats = ingest_all()

    assert (stats.written, stats.dropped) == (4, 1)
    assert UsageRecord.objects.count() == 2 and Execution.objects.count() == 2
    (length,) = redis_store.round_trip(("XLEN", write_behind.stream_key()))
    assert length == 0  # all three acknowledged: nothing left to stop the next run


def _timeout() -> OperationalError:
    """What Django raises when PostgreSQL cancels a statement at statement_timeout: an
    OperationalError, like a lost connection, whose cause is psycopg's QueryCanceled."""
    from psycopg.errors import QueryCanceled

    error = OperationalError("canceling statement due to statement timeout")
    error.__cause__ = QueryCanceled("canceling statement due to statement timeout")
    return error


def _calls(api_key, count: int) -> list[Record]:
    from tests.conftest import usage_call

    return [
        Record("usage", usage_call(_now(), key=api_key[0], request_id=f"req_t{n}").payload())
        for n in range(count)
    ]


def test_a_batch_too_big_for_the_statement_timeout_is_written_in_smaller_batches(
    api_key, monkeypatch
):
    """A batch that takes longer than DB_STATEMENT_TIMEOUT (thousands of large executions,
    a lower timeout) timed out again on every retry: the ingest read the same batch for
    good and the stream stalled for every project. Smaller parts are each in time."""
    real = write_behind._sinks["usage"]
    sizes = []

    def slow_when_big(payloads):
        sizes.append(len(payloads))
        if len(payloads) > 2:
            raise _timeout()
        real(payloads)

    monkeypatch.setitem(write_behind._sinks, "usage", slow_when_big)
    buffer = Buffer()
    buffer._records = _calls(api_key, 7)

    assert buffer.flush() == 7
    assert len(buffer) == 0 and write_behind.dropped_so_far() == {}
    assert UsageRecord.objects.count() == 7
    assert sizes[0] == 7 and max(sizes[1:]) <= 4


@pytest.mark.parametrize("slow", [0, 3, 6], ids=["first", "middle", "last"])
def test_a_record_that_times_out_alone_waits_with_the_rest_and_nothing_is_dropped(
    api_key, monkeypatch, slow
):
    """One record timing out on its own says the database cannot take writes now (no
    record is big enough to outlast the timeout on a working one): it and what was not
    yet tried wait, as in an outage; nothing is set aside, and all go once it is quick."""
    real = write_behind._sinks["usage"]
    records = _calls(api_key, 7)
    late = records[slow].payload["request_id"]

    def sink(payloads):
        if any(p["request_id"] == late for p in payloads):
            raise _timeout()
        real(payloads)

    monkeypatch.setitem(write_behind._sinks, "usage", sink)
    buffer = Buffer()
    buffer._records = records

    written = buffer.flush()
    assert write_behind.dropped_so_far() == {}
    assert written + len(buffer) == 7 and UsageRecord.objects.count() == written
    assert buffer._records[0].payload["request_id"] == late  # it waits, first in line
    monkeypatch.setitem(write_behind._sinks, "usage", real)
    assert buffer.flush() == 7 - written
    assert len(buffer) == 0 and UsageRecord.objects.count() == 7


def test_when_every_write_times_out_nothing_is_dropped_and_the_tries_are_few(api_key, monkeypatch):
    """A database too slow for everyone is an outage: everything waits, and the batch is
    not split into a timeout per record (2,000 of them at 30 seconds each)."""
    real = write_behind._sinks["usage"]
    tries = []

    def slow(payloads):
        tries.append(len(payloads))
        raise _timeout()

    monkeypatch.setitem(write_behind._sinks, "usage", slow)
    buffer = Buffer()
    buffer._records = _calls(api_key, 64)

    assert buffer.flush() == 0
    assert len(buffer) == 64 and write_behind.dropped_so_far() == {}
    assert len(tries) <= 10

    monkeypatch.setitem(write_behind._sinks, "usage", real)
    assert buffer.flush() == 64


def test_a_lone_record_that_times_out_with_nothing_else_written_waits(api_key, monkeypatch):
    """With no other record written, nothing shows the database is working: it waits."""
    monkeypatch.setitem(write_behind._sinks, "usage", lambda payloads: _raise(_timeout()))
    buffer = Buffer()
    buffer._records = _calls(api_key, 1)
    assert buffer.flush() == 0
    assert len(buffer) == 1 and write_behind.dropped_so_far() == {}


def _raise(error: Exception) -> None:
    raise error


def test_the_buffers_thread_outlives_a_flush_that_raises(settings, monkeypatch):
    """Without Redis, one thread per worker writes the buffer: if a flush ever raised past
    its handlers (closing a broken connection can), the thread ended, no other was
    started, and every later call's entry waited in memory until the buffer was full."""
    settings.USAGE_FLUSH_SECONDS = 0.05
    written: list[dict] = []
    monkeypatch.setitem(write_behind._sinks, "test-thread", written.extend)
    closes = {"n": 0}

    def close_once_broken() -> None:
        closes["n"] += 1
        if closes["n"] == 1:
            raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(write_behind, "close_old_connections", close_once_broken)
    buffer = Buffer()

    def written_soon(count: int) -> bool:
        for _ in range(200):
            if len(written) >= count:
                return True
            time.sleep(0.01)
        return False

    buffer.add(Record("test-thread", {"n": 1}))
    assert written_soon(1)
    buffer.add(Record("test-thread", {"n": 2}))
    assert written_soon(2), "the second entry was never written"
    assert written == [{"n": 1}, {"n": 2}]


def test_a_dead_buffer_thread_is_replaced_by_the_next_entry(settings, monkeypatch):
    """Something no loop catches (SystemExit) can still end the writer: the next entry
    starts another, or every later call's entry waits in memory until the buffer is full."""
    import threading

    settings.USAGE_FLUSH_SECONDS = 3600  # the new thread sleeps: nothing here races it
    buffer = Buffer()
    dead = threading.Thread(target=lambda: None)
    dead.start()
    dead.join()
    buffer._thread = dead

    buffer.add(Record("test-thread", {"n": 1}))

    assert buffer._thread is not dead and buffer._thread.is_alive()
    assert len(buffer) == 1


def test_an_entry_on_the_stream_twice_in_one_read_is_counted_once(api, redis_store, deferred):
    """A call's entry can reach the stream twice (its XADD's reply lost, so the worker
    buffered it too, and handed its buffer to the stream at exit): read in one batch, the
    row was inserted once but both copies counted towards the roll-ups."""
    assert_ok(api.post(INVOKE, {"prompt": "hi"}))
    stream = write_behind.stream_key()
    (reply,) = redis_store.round_trip(("XRANGE", stream, "-", "+"))
    ((_, fields),) = reply
    redis_store.round_trip(("XADD", stream, "*", *fields))

    StreamIngest(consumer="test").run(once=True)

    assert UsageRecord.objects.count() == 1
    assert Execution.objects.count() == 1
    assert UsageHour.objects.get().requests == 1
    assert ProjectUsageHour.objects.get().requests == 1
