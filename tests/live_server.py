"""The live server's threads: a few that live as long as the server and keep their database
connection between requests, as a gunicorn worker does (CONN_MAX_AGE), instead of a new
thread, and so a new connection, for every connection a client opens.

On PostgreSQL a new connection cost some 13 ms a request: 3 ms to connect, and 10 ms for
the new backend to read the catalog entries of the usage table's partitions (some 350
relations) before its first insert. schemathesis sends 3,735 requests: 102 s on
PostgreSQL, 20 s on SQLite, before this.

A request still has a thread of its own while it is answered: a thread is started when
none is idle (a browser holds several keep-alive connections at once), and waits for the
next once its client has gone. Django's request_started and request_finished signals
still open and close connections as they do for gunicorn (close_old_connections: a
connection in error or past its age is closed). SQLite's in-memory database is shared with
the test's thread as before (`connections_override`); closing it would do nothing.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
from typing import Any

from django.core.servers.basehttp import ThreadedWSGIServer
from django.db import connections

# How long closing the server waits for each thread to end (after its client's socket was
# shut down, so none is left reading one).
JOIN_SECONDS = 5.0


class PooledWSGIServer(ThreadedWSGIServer):
    """Django's live server (ThreadedWSGIServer) on threads that answer one client
    connection after another and keep their database connections."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._idle = 0
        self._pool: list[threading.Thread] = []
        self._serving: set[socket.socket] = set()
        self._waiting: queue.SimpleQueue[tuple[socket.socket, Any] | None] = queue.SimpleQueue()

    def process_request(self, request: socket.socket, client_address: Any) -> None:  # type: ignore[override]
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                thread = threading.Thread(
                    target=self._serve, name=f"live-server-{len(self._pool)}", daemon=True
                )
                self._pool.append(thread)
                thread.start()
            self._serving.add(request)
        self._waiting.put((request, client_address))

    def _serve(self) -> None:
        try:
            while (item := self._waiting.get()) is not None:
                request, client_address = item
                try:
                    self.process_request_thread(request, client_address)
                finally:
                    self.idle()
                    with self._lock:
                        self._serving.discard(request)
                        self._idle += 1
        finally:
            connections.close_all()

    def idle(self) -> None:
        """Called on a thread once its client connection is done, whether or not Django sent
        request_finished for each of its requests (a thread used to end here)."""

    def _close_connections(self) -> None:
        """After each client connection Django's server closes every database connection of
        the thread; this one keeps them for the thread's next request."""

    def server_close(self) -> None:
        super().server_close()
        with self._lock:
            serving, threads = list(self._serving), list(self._pool)
        for request in serving:
            # A keep-alive connection the client left open: its thread stops reading.
            with contextlib.suppress(OSError):
                request.shutdown(socket.SHUT_RDWR)
        for _ in threads:
            self._waiting.put(None)
        for thread in threads:
            thread.join(JOIN_SECONDS)
