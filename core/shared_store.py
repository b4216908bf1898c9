"""The shared store (Redis) that every worker and every instance sees: rate-limit counts,
change markers for the callers' cache, and the stream of usage entries.

One connection per thread (a gunicorn sync worker has one), used two ways:
- `round_trip(command)`: send, wait, read the reply. An API call makes one.
- `send(command, if_lost=…)`: send and do not wait. The reply is read at the start of the
  thread's next round trip (Redis answers in order) or by `drain()`. Once sent, the
  command is in the kernel's socket buffer, which is delivered even if the process is
  killed outright; `if_lost` is called if its reply turns out to be an error, or the
  connection broke before the reply could be read (the command may or may not have been
  carried out: what is sent this way must be safe to carry out twice).

Redis being down must never take the API down with it: every failure disconnects, logs a
warning (at most every ten seconds), counts itself, and keeps the store "unavailable" for
a moment so that the next calls do not each wait for a timeout. Callers then do without:
rate limits are not counted (they fail open), the callers' cache is not used (tokens are
checked against the database), usage entries go to the in-process buffer.

Commands are packed here (RESP) rather than by redis-py, which costs three times as much
CPU for the same bytes on this path; redis-py (with hiredis) still owns the socket and
parses replies.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from redis.connection import Connection, parse_url
from redis.exceptions import RedisError, ResponseError

logger = logging.getLogger(__name__)

type Arg = str | bytes | int | float
type Command = tuple[Arg, ...]

CONNECT_TIMEOUT = 0.25  # seconds
READ_TIMEOUT = 0.25
COOL_OFF = 1.0  # seconds without trying after a failure
WARN_EVERY = 10.0


class StoreUnavailable(Exception):
    """The shared store could not be reached or did not answer in time."""


def pack(*commands: Command) -> bytes:
    """RESP for `commands`, pipelined."""
    out = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        for arg in command:
            data = arg if type(arg) is bytes else str(arg).encode()
            out += (b"$%d\r\n" % len(data), data, b"\r\n")
    return b"".join(out)


@dataclass
class _Link:
    connection: Connection | None = None
    # One per command sent with send() whose reply is not read yet, oldest first: what
    # to do if it turns out lost.
    unread: list[Callable[[], None]] = field(default_factory=list)


@dataclass
class StoreHealth:
    """What this process has seen of the store: for logs, tests and the bench."""

    failures: int = 0
    unavailable_until: float = 0.0
    last_warning: float = 0.0


class SharedStore:
    """Redis at `url`, with the timeouts and the cool-off above."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.health = StoreHealth()
        self._local = threading.local()
        params = parse_url(url)
        # rediss:// (TLS) and unix:// (a socket file) name a connection class of their own.
        self._connection_class: type[Connection] = params.pop("connection_class", Connection)
        self._params = params

    # -- connection ---------------------------------------------------------------------

    def _link(self) -> _Link:
        link: _Link | None = getattr(self._local, "link", None)
        if link is None:
            link = self._local.link = _Link()
        return link

    def _connection(self, link: _Link) -> Connection:
        if link.connection is None:
            connection = self._connection_class(
                **self._params,
                protocol=2,  # the replies this module reads are RESP2's arrays
                socket_timeout=READ_TIMEOUT,
                socket_connect_timeout=CONNECT_TIMEOUT,
            )
            connection.connect()
            link.connection = connection
        return link.connection

    @property
    def available(self) -> bool:
        return time.monotonic() >= self.health.unavailable_until

    def _failed(self, link: _Link, error: BaseException) -> StoreUnavailable:
        if link.connection is not None:
            link.connection.disconnect()
            link.connection = None
        lost, link.unread = link.unread, []
        now = time.monotonic()
        self.health.failures += 1
        self.health.unavailable_until = now + COOL_OFF
        if now - self.health.last_warning >= WARN_EVERY:
            self.health.last_warning = now
            logger.warning(
                "Shared store %s unavailable (%s); failures so far: %d",
                self._params.get("host") or self._params.get("path", "?"),
                error,
                self.health.failures,
            )
        for if_lost in lost:
            if_lost()
        return StoreUnavailable(str(error))

    # -- commands -----------------------------------------------------------------------

    def round_trip(self, *commands: Command, timeout: float | None = None) -> list[Any]:
        """Send `commands` and return their replies (a ResponseError instance in place of
        a command's reply if Redis refused that command). StoreUnavailable if Redis
        cannot be reached, or was recently found unreachable. `timeout`: for a command
        that blocks on purpose (XREADGROUP … BLOCK), longer than READ_TIMEOUT."""
        if not self.available:
            raise StoreUnavailable("cooling off after a failure")
        link = self._link()
        try:
            connection = self._connection(link)
            connection.send_packed_command([pack(*commands)], check_health=False)
            self._read_unread(link, connection)
            if timeout is None:
                return [self._reply(connection) for _ in commands]
            return [self._reply(connection, timeout=timeout) for _ in commands]
        except (RedisError, OSError) as error:
            raise self._failed(link, error) from error

    def send(self, *sends: tuple[Command, Callable[[], None]]) -> bool:
        """Send each (command, if_lost) without waiting for the replies, in one write.
        False if the store is unavailable (then nothing was sent: the caller places the
        commands' contents elsewhere)."""
        if not self.available:
            return False
        link = self._link()
        try:
            connection = self._connection(link)
            connection.send_packed_command(
                [pack(*(command for command, _ in sends))], check_health=False
            )
        except (RedisError, OSError) as error:
            self._failed(link, error)
            return False
        link.unread.extend(if_lost for _, if_lost in sends)
        return True

    def drain(self) -> None:
        """Read the replies of every command sent and not yet answered (at exit)."""
        link = self._link()
        if not link.unread or link.connection is None:
            return
        try:
            self._read_unread(link, link.connection)
        except (RedisError, OSError) as error:
            self._failed(link, error)

    def _read_unread(self, link: _Link, connection: Connection) -> None:
        while link.unread:
            reply = self._reply(connection)
            if_lost = link.unread.pop(0)
            if isinstance(reply, ResponseError):
                logger.warning("Shared store refused a command sent without waiting: %s", reply)
                if_lost()

    @staticmethod
    def _reply(connection: Connection, *, timeout: float | None = None) -> Any:
        try:
            if timeout is None:
                return connection.read_response()
            return connection.read_response(timeout=timeout)
        except ResponseError as refused:
            return refused


_store: SharedStore | None = None
_store_url: str | None = None


def shared_store() -> SharedStore | None:
    """The store at settings.REDIS_URL, or None where there is none (one instance, the
    embedded defaults: counts per process, no callers' cache, usage buffered in-process)."""
    global _store, _store_url
    url = settings.REDIS_URL
    if not url:
        return None
    if _store is None or _store_url != url:
        _store, _store_url = SharedStore(url), url
    return _store
