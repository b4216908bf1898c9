"""A far end that trickles its answer cannot hold the sender past the attempt's total
deadline: a header line a second, or "100 Continue" again and again."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from webhooks import transport


def trickler(lines: list[bytes]) -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    stop = threading.Event()

    def serve() -> None:
        connection, _ = server.accept()
        connection.recv(65536)
        for line in lines:
            if stop.is_set():
                break
            try:
                connection.sendall(line)
            except OSError:
                break
            time.sleep(1)
        connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    server.close()


@pytest.mark.parametrize(
    "lines",
    [
        [b"HTTP/1.1 200 OK\r\n"] + [b"X-Slow: 1\r\n"] * 30,
        [b"HTTP/1.1 100 Continue\r\n\r\n"] * 30,
    ],
    ids=["a header line a second", "100 Continue forever"],
)
def test_a_trickling_answer_is_cut_at_the_total_deadline(local_delivery, monkeypatch, lines):
    monkeypatch.setattr(transport, "TOTAL", 2.0)
    for port in trickler(lines):
        started = time.monotonic()
        outcome = transport.post(f"http://127.0.0.1:{port}/hook", body=b"{}", headers={})
        took = time.monotonic() - started
        assert took < 4, took
        assert not outcome.ok and "No complete answer within 2 seconds" in outcome.error
