"""Records written after the answer, off the request's path: the usage log, executions.

An app registers a channel and the function that writes a batch of its records
(`register(channel, sink)`, in AppConfig.ready); the API calls `defer(channel, payload)`
once the answer is made. Where a record goes:

- With a shared store (Redis), onto the stream `<prefix>writes`, sent before the answer
  leaves and without waiting for Redis (core/shared_store.py): a worker killed outright
  loses nothing Redis took. `manage.py ingest_usage` reads the stream, writes each batch
  in one transaction, and acknowledges only after the commit; a database outage leaves
  the records in Redis until it ends.
- Otherwise (no Redis, or Redis unreachable), into this process's buffer, which a
  background thread writes every USAGE_FLUSH_SECONDS (0: at once, as the tests do).

Writing a batch, in either place: if the database is unavailable (an OperationalError: a
lost connection, a lock timeout) or refuses the SQL itself (a table or column missing: code
deployed before its migration), everything waits for the next try. A batch that runs
into the statement timeout is written in halves, so one too big to write in time cannot
stall the stream for good; a single record that times out waits with the rest, as in
an outage (_Attempt). A batch that fails otherwise is written in halves, down to the record
that fails, and only a record that fails on its own content is dropped, logged and
counted. The buffer is bounded
(MAX_BUFFERED): past it, during a long outage, the oldest records are dropped and counted.
Sinks must tolerate a record written twice (an acknowledgement lost after a commit).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection

from core.db_errors import schema_refused, sqlstate, timed_out
from core.outage_log import OutageLog
from core.shared_store import StoreUnavailable, shared_store

logger = logging.getLogger(__name__)

type Payload = dict[str, Any]
type Sink = Callable[[list[Payload]], None]
type DropRecorder = Callable[[str, str, int], None]

MAX_BUFFERED = 50_000
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
STREAM = "writes"
# Far more than any record of ours (an execution, the largest, is tens of kilobytes:
# agents.runtime.kept). One bigger was not written by us, and could outlast the statement
# timeout alone, or pass PostgreSQL's limit for a JSON value: either is taken for a
# database that cannot write now, so it would wait, and everything behind it, for good.
MAX_RECORD_BYTES = 1_000_000
# Far more than any entry of ours holds (a call's usage entry and its execution; one
# record each when a worker hands its buffer over at exit). One with a million records,
# each unreadable, was read, logged and counted one by one: a million log lines, and a
# minute in which no tenant's calls were written. Such an entry is dropped whole.
MAX_RECORDS_PER_ENTRY = 100
# How much of the backlog one read brings over (beyond its first entry). A read of new
# records has no bound: one of a few hundred megabytes, made by hand, outlasts the read's
# timeout (2 s: about 250 MB at a gigabit), and so does each read of the backlog after it,
# for good. The backlog is read through BACKLOG_READ instead, which leaves what is too big
# to be ours in Redis and sends a mark in its place.
BACKLOG_READ_BYTES = 8_000_000
# Far deeper than any record of ours nests (the API refuses a body nested deeper than 64
# levels: core.strict_json; an execution keeps its parts a few levels down). One nested
# far deeper was read and written (Python reads some 9,990 levels, PostgreSQL keeps them),
# and its readers, deeper in the stack than the ingest, could not read it back: every page
# of the project's execution log holding it was a 500. Such a record is unreadable.
MAX_RECORD_DEPTH = 256
# In place of a record over MAX_RECORD_BYTES, and of an entry of over MAX_RECORDS_PER_ENTRY
# records (followed by how many), in BACKLOG_READ's reply.
TOO_BIG = b"\x00too big"
TOO_MANY = b"\x00too many"
BACKLOG_READ = """
local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
    'STREAMS', KEYS[1], '0')
local max_bytes, max_records, budget = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local out = {}
if not reply or not reply[1] then return out end
for _, entry in ipairs(reply[1][2]) do
    if budget <= 0 then break end
    local fields = entry[2]
    if not fields then
        fields = {}
    elseif #fields > 2 * max_records then
        fields = {ARGV[8], tostring(#fields / 2)}
    else
        for i = 2, #fields, 2 do
            if #fields[i] > max_bytes then fields[i] = ARGV[7] end
            budget = budget - #fields[i]
        end
    end
    out[#out + 1] = {entry[1], fields}
end
return out
"""
# One encoder for every record (json.dumps with separators makes a new one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Record:
    """One deferred write: its channel (which registered sink writes it) and its JSON payload,
    as it waits in the buffer or travels as one field of a stream entry."""

    channel: str
    payload: Payload

    def encoded(self) -> bytes:
        return _ENCODER.encode([self.channel, self.payload]).encode()

    @classmethod
    def decoded(cls, data: bytes) -> Record:
        """The record `data` holds; ValueError if it is no record, or nested deeper than
        MAX_RECORD_DEPTH (looked into only when it has that many brackets: ours do not)."""
        value = json.loads(data)
        if data.count(b"[") + data.count(b"{") > MAX_RECORD_DEPTH:
            _within_depth(value)
        channel, payload = value
        return cls(str(channel), dict(payload))


def _within_depth(value: Any) -> None:
    """ValueError if `value` nests deeper than MAX_RECORD_DEPTH. Iterative: the point is to
    refuse deep nesting, not to recurse into it."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_RECORD_DEPTH:
                raise ValueError(f"a record nested deeper than {MAX_RECORD_DEPTH} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


@dataclass
class WriteResult:
    """What write() did with a batch: written, dropped (counted), and `waiting`, the records the
    database could not take now, which the buffer keeps and the ingest leaves unacknowledged."""

    written: int = 0
    dropped: int = 0
    waiting: list[Record] = field(default_factory=list)  # the database was unavailable


_sinks: dict[str, Sink] = {}
_stream_checks: dict[str, Sink] = {}
_drop_recorders: list[DropRecorder] = []


def register(channel: str, sink: Sink, *, from_stream: Sink | None = None) -> None:
    """`sink` writes the channel's records. `from_stream`, if given, is called first on
    those read from the stream, which anyone with the Redis password can add to (a
    process's own buffer holds only what it made): it raises (ValueError) to refuse a
    batch, which is then written in halves down to the record it refuses, as for a sink."""
    _sinks[channel] = sink
    if from_stream is not None:
        _stream_checks[channel] = from_stream


def on_dropped(recorder: DropRecorder) -> None:
    """`recorder(channel, reason, count)` keeps a count of dropped records where people
    can see it (the usage overview); called once the database answers again."""
    _drop_recorders.append(recorder)


def stream_key() -> str:
    return f"{settings.REDIS_KEY_PREFIX}{STREAM}"


def write(records: list[Record], *, from_stream: bool = False) -> WriteResult:
    """Write `records` now, each channel's in one batch (see the module for failures);
    `from_stream`: read from the stream, so checked first (register)."""
    result = WriteResult()
    by_channel: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_channel[record.channel].append(record)
    for channel, batch in by_channel.items():
        sink = _sinks.get(channel)
        if sink is None:
            logger.error("No writer for %d %r records; dropped", len(batch), channel[:40])
            _count_drops(_as_counted(channel), "no writer", len(batch))
            result.dropped += len(batch)
            continue
        check = _stream_checks.get(channel) if from_stream else None
        _Attempt(sink, channel, result, check).part(batch)
    if result.written:
        _report_drops()
    return result


@dataclass
class _Attempt:
    """One channel's batch, written whole or in parts.

    A part that fails on its content is written in halves; only a record that fails
    alone is dropped. A part that runs into the statement timeout is halved, so a
    batch too big to write in time is written in parts that are not. One record that
    times out alone means the database cannot take writes now: it and everything not yet
    tried wait, as in an outage, and nothing is dropped for it; a part that meets a lost
    connection or a lock timeout waits too. (One record cannot outlast the timeout on a
    working database: agents/runtime.kept bounds the largest, an execution, to tens of
    kilobytes.) A database too slow for everyone costs about log2(n) + 1 timeouts."""

    sink: Sink
    channel: str
    result: WriteResult
    check: Sink | None = None
    stalled: bool = False

    def part(self, batch: list[Record]) -> None:
        if self.stalled:
            self.result.waiting.extend(batch)
            return
        try:
            payloads = [r.payload for r in batch]
            if self.check is not None:
                self.check(payloads)
            self.sink(payloads)
        except DATABASE_UNAVAILABLE as error:
            if timed_out(error) and len(batch) > 1:
                logger.warning(
                    "%d %r records timed out together; writing them in halves",
                    len(batch),
                    self.channel,
                )
                half = len(batch) // 2
                self.part(batch[:half])
                self.part(batch[half:])
                return
            # This part waits. If it was one record timing out alone, nothing more is tried
            # now; a lost connection or a lock timeout is found out quickly by each part.
            self.stalled = timed_out(error)
            self.result.waiting.extend(batch)
            return
        except Exception as error:
            if schema_refused(error):
                # Not the records' fault: dropped one by one, every call logged between a
                # deploy and its migration would be lost. They wait, as in an outage.
                logger.error(
                    "%d %r records wait: the database refuses the SQL that writes them "
                    "(%s); has `manage.py migrate` run?",
                    len(batch),
                    self.channel,
                    sqlstate(error),
                )
                self.stalled = True
                self.result.waiting.extend(batch)
                return
            if len(batch) == 1:
                logger.exception("A %r record cannot be written and is dropped", self.channel)
                _count_drops(self.channel, "cannot be written", 1)
                self.result.dropped += 1
                return
            # In halves, down to the record that fails: one by one, a batch of 2,000 calls
            # with one bad record cost 2,000 transactions, so one such record a batch (one
            # made by hand on the stream) cut the ingest to a fraction of its pace.
            logger.warning(
                "%d %r records failed together (%s); writing them in halves",
                len(batch),
                self.channel,
                type(error).__name__,
            )
            half = len(batch) // 2
            self.part(batch[:half])
            self.part(batch[half:])
            return
        self.result.written += len(batch)


# -- Counting what was dropped ----------------------------------------------------------------

# A channel's name as a drop count keeps it (UsageDrop.channel, 40 characters): ours, or an
# older or newer release's, are such names.
_CHANNEL_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}", re.ASCII)


def _as_counted(channel: str) -> str:
    """A channel nobody writes, by the name its drops are counted under: its own where it
    reads as a channel's (a release's that this one does not know), else "unknown". A
    stream entry can name any text: counted under one the column refused (over 40
    characters, a NUL), the count failed, was kept to be tried again after every later
    batch, and failed again, an ERROR each time, for the life of the ingest."""
    return channel if _CHANNEL_NAME.fullmatch(channel) else "unknown"


_drops: Counter[tuple[str, str]] = Counter()
_drops_lock = threading.Lock()


def _count_drops(channel: str, reason: str, count: int) -> None:
    with _drops_lock:
        _drops[(channel, reason)] += count


def _report_drops() -> None:
    """Hand the counts to the recorders, now that the database takes writes again."""
    with _drops_lock:
        pending = dict(_drops)
        _drops.clear()
    for (channel, reason), count in pending.items():
        try:
            for recorder in _drop_recorders:
                recorder(channel, reason, count)
        except Exception:
            logger.exception("%d dropped %r records could not be counted", count, channel)
            _count_drops(channel, reason, count)


def dropped_so_far() -> dict[tuple[str, str], int]:
    """Drops not yet handed to a recorder (for tests and the bench)."""
    with _drops_lock:
        return dict(_drops)


# -- The in-process buffer --------------------------------------------------------------------


class Buffer:
    """Records waiting in this process, and the thread that writes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # One flush at a time: the exit's hand-over must wait for a flush the background
        # thread has in hand, whose records would otherwise die with the process, unsaid.
        self._flushing = threading.Lock()
        self._records: list[Record] = []
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def add(self, record: Record) -> None:
        interval = settings.USAGE_FLUSH_SECONDS
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's thread does not exist here
                self._records, self._thread, self._pid = [], None, os.getpid()
                self._flushing = threading.Lock()  # (a parent's flush may have held it)
            self._records.append(record)
            self._bound()
            # (A thread ended by something no loop catches, SystemExit, is replaced.)
            if interval > 0 and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(
                    target=self._run, args=(interval,), name="write-behind", daemon=True
                )
                self._thread.start()
        if interval <= 0:
            self.flush()

    def _bound(self) -> None:
        overflow = len(self._records) - MAX_BUFFERED
        if overflow > 0:  # a database down for long: bound the memory, oldest out first
            for record in self._records[:overflow]:
                _count_drops(record.channel, "buffer full", 1)
            del self._records[:overflow]
            logger.error("Write-behind buffer full: dropped the %d oldest records", overflow)

    def flush(self) -> int:
        """Write what is buffered now. Returns how many records were written; what the
        database could not take yet goes back to the front of the buffer."""
        with self._flushing:
            with self._lock:
                records, self._records = self._records, []
            if not records:
                return 0
            result = write(records)
            if result.waiting:
                with self._lock:
                    self._records[:0] = result.waiting
                    self._bound()
            return result.written

    def hand_over(self) -> int:
        """At exit: what the database will not take now goes to the shared store, if there
        is one; what neither takes is lost, and says so."""
        written = self.flush()
        with self._lock:
            records, self._records = self._records, []
        store = shared_store()
        kept = 0
        if records and store is not None:
            try:
                store.round_trip(*(("XADD", stream_key(), "*", "r", r.encoded()) for r in records))
                kept = len(records)
            except StoreUnavailable:
                pass
        if kept:
            logger.warning("Handed %d buffered records to the shared store at exit", kept)
        elif records:
            logger.error(
                "Lost %d buffered records at exit: neither the database nor a shared store "
                "took them",
                len(records),
            )
        return written

    def __len__(self) -> int:
        return len(self._records)

    def _run(self, interval: float) -> None:
        """Flush every `interval` seconds, for the life of the process. Nothing a flush
        raises ends the loop: this is the process's one writer of the buffer, and ended,
        every later call's entry would wait in memory until the buffer was full. (What
        the database could not take is back in the buffer already: see flush.)"""
        while True:
            time.sleep(interval)
            try:
                self.flush()
            except Exception:
                logger.exception("The write-behind flush failed; it is tried again")
            try:
                close_old_connections()  # closing a broken connection can raise, too
            except Exception:
                logger.exception("The write-behind thread could not close its connection")


buffer = Buffer()


_batch = threading.local()


def defer(channel: str, payload: Payload) -> None:
    """Write `payload` on `channel` after the answer (see the module for where it goes).
    Inside `batch()`, it leaves with the batch's other records, in one write."""
    record = Record(channel, payload)
    pending: list[Record] | None = getattr(_batch, "records", None)
    if pending is not None:
        pending.append(record)
    else:
        _send([record])


@contextmanager
def batch() -> Iterator[None]:
    """Hold what is deferred inside, and send it in one write on the way out (an API call's
    execution and its usage entry travel together)."""
    outer: list[Record] | None = getattr(_batch, "records", None)
    _batch.records = records = [] if outer is None else outer
    try:
        yield
    finally:
        if outer is None:
            _batch.records = None
            if records:
                _send(records)


def _send(records: list[Record]) -> None:
    store = shared_store()
    if store is not None and settings.USAGE_FLUSH_SECONDS > 0:
        # One stream entry for the lot (a call's execution and its usage entry): one
        # entry for Redis to keep and for the ingest to read, acknowledge and delete.
        fields = [part for record in records for part in ("r", record.encoded())]
        if store.send((("XADD", stream_key(), "*", *fields), partial(_buffer_all, records))):
            return
    for record in records:
        buffer.add(record)


def _buffer_all(records: list[Record]) -> None:
    for record in records:
        buffer.add(record)


def flush_at_exit() -> None:
    """Everything this process holds: the store's unread replies, then the buffer."""
    store = shared_store()
    if store is not None:
        store.drain()
    buffer.hand_over()


atexit.register(flush_at_exit)


# -- Reading the stream: `manage.py ingest_usage` ---------------------------------------------

GROUP = "ingest"
READ_COUNT = 2000
BLOCK_MS = 1000
CLAIM_IDLE_MS = 30_000  # a consumer silent this long is presumed dead; others take over
# A consumer silent this long with nothing pending is forgotten when an ingest starts:
# each is named after its host, and containers get a new name at every deploy.
FORGET_IDLE_MS = 24 * 3600 * 1000


@dataclass
class IngestStats:
    """A StreamIngest's running totals, printed by ingest_usage when it stops; `waits` counts
    the batches left unacknowledged because the database was unavailable."""

    batches: int = 0
    written: int = 0
    dropped: int = 0
    waits: int = 0


class StreamIngest:
    """One consumer of the stream: reads batches, writes them, acknowledges after commit.

    Several may run at once (two `make serve` on a host, several hosts): the consumer
    group hands each record to one of them, and takes over the records of a consumer that
    died before acknowledging them.
    """

    def __init__(self, consumer: str) -> None:
        store = shared_store()
        if store is None:
            raise RuntimeError("ingest_usage needs REDIS_URL: without it there is no stream.")
        self.store = store
        self.consumer = consumer
        self.stats = IngestStats()
        self.stopping = False
        self._backlog = True  # first read our own unacknowledged records, then new ones
        self._last_read = 0  # how many records the last read returned
        # A read for new records waits up to BLOCK_MS for some; `run(once=True)` drains what
        # is there and waits for nothing (its last, empty read cost a second for nothing).
        self._block = True
        # While the database does not answer, said at the first try, then once a minute.
        self._outage = OutageLog(
            logger,
            first="The database does not answer: the usage stream's records wait in Redis",
            again="The database has not answered for %d s: the records wait in Redis",
            back="The database answers again, after %d s: writing the records",
        )

    def run(self, *, once: bool = False) -> IngestStats:
        delay = 0.5
        self._block = not once
        self._create_group()
        self._forget_idle_consumers()
        while not self.stopping:
            try:
                self.step()
                delay = 0.5
                if not once and 0 < self._last_read < READ_COUNT:
                    # Caught up: let the next batch gather for a moment. Under load a
                    # batch is then hundreds of records in one transaction, not a handful
                    # in each (the per-batch cost, not the per-row one, is most of it).
                    self._wait(settings.USAGE_FLUSH_SECONDS)
            except StoreUnavailable:
                # A read whose reply was lost may have been delivered to us all the same:
                # those records wait, unacknowledged, in our own backlog. Read it first.
                self._backlog = True
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            finally:
                if not connection.in_atomic_block:  # (a test's transaction, never in service)
                    close_old_connections()
            if once and not self._last_read and not self._backlog:
                break  # the stream is drained (a read that only dropped records is not)
        return self.stats

    def _wait(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while not self.stopping and (left := until - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))

    def _create_group(self) -> None:
        """Make the consumer group if it is not there; while Redis is away, wait for it,
        unless told to stop (SIGTERM), which the wait must not ignore."""
        while not self.stopping:
            try:
                (reply,) = self.store.round_trip(
                    ("XGROUP", "CREATE", stream_key(), GROUP, "0", "MKSTREAM")
                )
                if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
                    raise RuntimeError(str(reply))
                return
            except StoreUnavailable:
                time.sleep(1)

    def _forget_idle_consumers(self) -> None:
        """Remove from the group the consumers silent for FORGET_IDLE_MS with no record
        pending (nothing of theirs is lost: a consumer is made again by its next read).
        Kept, they pile up in Redis, one per host name an ingest ever ran on."""
        try:
            (reply,) = self.store.round_trip(("XINFO", "CONSUMERS", stream_key(), GROUP))
            if isinstance(reply, Exception):
                return
            for entry in reply:
                info = dict(zip(entry[::2], entry[1::2], strict=True))
                # The name as Redis has it: decoded with replacements, a name that is not
                # UTF-8 was sent back as one Redis did not know, and stayed for good.
                name = bytes(info.get(b"name", b""))
                idle, pending = int(info.get(b"idle", 0)), int(info.get(b"pending", 1))
                mine = name == self.consumer.encode()
                if not mine and pending == 0 and idle >= FORGET_IDLE_MS:
                    self.store.round_trip(("XGROUP", "DELCONSUMER", stream_key(), GROUP, name))
        except (StoreUnavailable, ValueError, TypeError):
            return  # housekeeping: tried again at the next start

    def step(self) -> int:
        """Read one batch and write it. Returns how many records it wrote."""
        entries = self._read()
        self._last_read = len(entries)
        if not entries:
            return 0
        records: list[Record] = []
        ids = []
        # Said and counted once the batch is acknowledged: while the database is away the
        # same entries are read again every second, and each read said and counted them
        # again (an ERROR a second for each, through an outage of hours).
        unreadable: list[partial[None]] = []
        gone = [entry_id for entry_id, fields in entries if not fields]
        if gone:
            unreadable.append(partial(self._gone, gone))
        for entry_id, fields in entries:
            ids.append(entry_id)
            if not fields:
                continue
            if (count := _too_many(fields)) is not None:  # (left in Redis by BACKLOG_READ)
                unreadable.append(
                    partial(self._unreadable, entry_id, reason="too many records", count=count)
                )
                continue
            try:
                parts = _fields(fields, b"r")
            except (ValueError, KeyError):  # no record in it at all
                unreadable.append(partial(self._unreadable, entry_id))
                continue
            if len(parts) > MAX_RECORDS_PER_ENTRY:
                unreadable.append(
                    partial(self._unreadable, entry_id, reason="too many records", count=len(parts))
                )
                continue
            # Each record on its own: one unreadable costs only itself, not the others of
            # its call.
            for data in parts:
                if len(data) > MAX_RECORD_BYTES or data == TOO_BIG:
                    unreadable.append(partial(self._unreadable, entry_id, reason="too big"))
                    continue
                try:
                    records.append(Record.decoded(data))
                except (ValueError, TypeError, RecursionError):
                    # RecursionError: nested deeper than json can read.
                    unreadable.append(partial(self._unreadable, entry_id))
        result = write(records, from_stream=True)
        self.stats.batches += 1
        self.stats.written += result.written
        self.stats.dropped += result.dropped
        if result.waiting:
            # The database is unavailable: acknowledge nothing; the same records are read
            # again (our own backlog) once it answers.
            self.stats.waits += 1
            self._backlog = True
            self._outage.failed(time.monotonic())
            time.sleep(1)
            return 0
        self.store.round_trip(("XACK", stream_key(), GROUP, *ids), ("XDEL", stream_key(), *ids))
        for say in unreadable:
            say()
        if unreadable and result.written:  # (the database answers: counted where it shows)
            _report_drops()
        self._outage.answered(time.monotonic())
        return result.written

    def _unreadable(self, entry_id: bytes, *, reason: str = "unreadable", count: int = 1) -> None:
        """A record that cannot be read (or is too big to be ours) is dropped and counted;
        kept, it would stop this ingest, and every one after it, for good. `count`: the
        records of an entry dropped whole, with this one line."""
        if count == 1:
            logger.error("A record in %s on the stream is %s; dropped", entry_id, reason)
        else:
            logger.error("%d records in %s on the stream: %s; dropped", count, entry_id, reason)
        _count_drops("stream", reason, count)
        self.stats.dropped += count

    def _gone(self, entry_ids: list[bytes]) -> None:
        """Entries read before and deleted from the stream since (XTRIM or XDEL by hand,
        while the database was away and they waited, unacknowledged): Redis answers them
        with an id and no fields. Their calls are lost; said and counted, one entry a call,
        and acknowledged: pending, they were read again at every start, and 2,000 of them
        hid the pending entries behind them from every read of the backlog."""
        logger.error(
            "%d entries (%s, ...) were gone from the stream before they were written "
            "(trimmed?); their calls are lost",
            len(entry_ids),
            entry_ids[0],
        )
        _count_drops("stream", "trimmed", len(entry_ids))
        self.stats.dropped += len(entry_ids)

    def _read(self) -> list[tuple[bytes, list[bytes]]]:
        if self._backlog:
            # Records this consumer read before and never acknowledged, and then those of
            # consumers that went silent.
            entries = self._backlog_read()
            if entries:
                return entries
            entries = self._autoclaim()
            if entries:
                return entries
            self._backlog = False
        return self._xreadgroup(">", block=self._block)

    def _backlog_read(self) -> list[tuple[bytes, list[bytes]]]:
        """Our own unacknowledged entries, as XREADGROUP … 0 reads them, through BACKLOG_READ:
        each record too big to be ours (and each entry of too many) left in Redis, and
        about BACKLOG_READ_BYTES at most in all (the rest at the next read)."""
        (reply,) = self.store.round_trip(
            (
                "EVAL",
                BACKLOG_READ,
                1,
                stream_key(),
                GROUP,
                self.consumer,
                READ_COUNT,
                MAX_RECORD_BYTES,
                MAX_RECORDS_PER_ENTRY,
                BACKLOG_READ_BYTES,
                TOO_BIG,
                TOO_MANY,
            ),
            timeout=BLOCK_MS / 1000 + 1,
        )
        if isinstance(reply, Exception):
            self._refused(reply)
            return []
        return [(entry_id, list(fields)) for entry_id, fields in reply]

    def _xreadgroup(self, start: str, *, block: bool) -> list[tuple[bytes, list[bytes]]]:
        command: list[str | int] = ["XREADGROUP", "GROUP", GROUP, self.consumer]
        command += ["COUNT", READ_COUNT]
        if block:
            command += ["BLOCK", BLOCK_MS]
        command += ["STREAMS", stream_key(), start]
        (reply,) = self.store.round_trip(tuple(command), timeout=BLOCK_MS / 1000 + 1)
        if isinstance(reply, Exception):
            self._refused(reply)
            return []
        if not reply:
            return []
        (_stream, entries) = reply[0]
        # (No fields: an entry deleted since we first read it; step() says so.)
        return [(entry_id, fields or []) for entry_id, fields in entries]

    def _autoclaim(self) -> list[tuple[bytes, list[bytes]]]:
        (reply,) = self.store.round_trip(
            (
                "XAUTOCLAIM",
                stream_key(),
                GROUP,
                self.consumer,
                CLAIM_IDLE_MS,
                "0-0",
                "COUNT",
                READ_COUNT,
            )
        )
        if isinstance(reply, Exception):
            self._refused(reply)
            return []
        if not reply:
            return []
        # Redis 7 takes the entries deleted since they were read out of the pending list,
        # and names them apart (the reply's third part); Redis 6.2 hands them over with
        # no fields. Either way step() says they are gone.
        deleted = reply[2] if len(reply) > 2 else []
        return [(entry_id, fields or []) for entry_id, fields in reply[1]] + [
            (entry_id, []) for entry_id in deleted
        ]

    def _refused(self, reply: Exception) -> None:
        """Redis refused a read. NOGROUP: it lost the stream and its group (a restart
        without persistence, FLUSHDB) and the workers' next XADD made a stream without
        one; the group is made again, from the stream's start, so those calls are read.
        Anything else is waited out like an unreachable store: taken for "nothing to
        read", it left the calls on the stream and the loop asking without pause."""
        logger.warning("The usage stream refused a read: %s", reply)
        if "NOGROUP" not in str(reply):
            raise StoreUnavailable(str(reply))
        try:
            self._create_group()
        except RuntimeError as refused:
            # Refused too (a replica after a failover: READONLY; a full Redis: OOM): waited
            # out, and asked again at the next read. Raised, it ended the ingest, and the
            # calls piled up in Redis with nobody to write them.
            raise StoreUnavailable(str(refused)) from None
        self._backlog = True


def _too_many(fields: list[bytes]) -> int | None:
    """How many records the entry held, if BACKLOG_READ sent its TOO_MANY mark in its place.
    An entry made by hand may begin with the same name: only the mark's own shape (a count
    of a few ASCII digits) is taken as one; int() of anything else ("many", "²", 5,000
    digits) raised, and stopped the ingest, for everyone, at each start (the entry stayed
    pending). Such an entry is read like any other, and dropped as unreadable."""
    if len(fields) == 2 and fields[0] == TOO_MANY and fields[1].isdigit() and len(fields[1]) < 10:
        return int(fields[1])
    return None


def _fields(fields: list[bytes], name: bytes) -> list[bytes]:
    """The values of every field called `name` in a stream entry (one per record)."""
    values = [value for key, value in zip(fields[::2], fields[1::2], strict=True) if key == name]
    if not values:
        raise KeyError(name)
    return values
