"""A far end that trickles its answer cannot hold the sender past the attempt's total
deadline: a header line a second, or "100 Continue" again and again."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from webhooks import transport


def trickler(lines: list[bytes], sent: list[bytes] | None = None) -> Iterator[int]:
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
            if sent is not None:
                sent.append(line)
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


class StalledLookup:
    """A resolver whose answer never comes while the test runs (a hostile authoritative
    server, or search domains each waited out in turn): released at the test's end."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.released = threading.Event()
        self.answered = threading.Event()

    def __call__(self, host, port, *args, **kwargs):
        self.asked.set()
        self.released.wait(5)
        self.answered.set()
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")


@pytest.fixture
def stalled_lookup(monkeypatch) -> Iterator[StalledLookup]:
    lookup = StalledLookup()
    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr(transport, "TIMEOUT", 0.1)
    yield lookup
    lookup.released.set()


def test_a_dns_lookup_that_never_answers_ends_the_attempt_within_its_limit(stalled_lookup):
    """The lookup ran before the attempt's 15 seconds started, with no limit of its own:
    a name whose servers never answer held the sender as long as the resolver waited."""
    outcome = transport.post("https://stalls.example.com/hook", body=b"{}", headers={})

    assert stalled_lookup.asked.is_set() and not stalled_lookup.answered.is_set()
    assert not outcome.ok and outcome.status_code is None
    assert "DNS lookup" in outcome.error


def test_past_a_number_of_unanswered_lookups_no_more_are_started(stalled_lookup, monkeypatch):
    """Each lookup given up on still holds a thread until the resolver ends it: their
    number is bounded, and an attempt past it is refused without starting one."""
    from webhooks import addresses

    monkeypatch.setattr(addresses, "MAX_LOOKUPS_UNANSWERED", 1)
    transport.post("https://stalls.example.com/hook", body=b"{}", headers={})
    stalled_lookup.asked.clear()

    outcome = transport.post("https://stalls-too.example.com/hook", body=b"{}", headers={})

    assert not stalled_lookup.asked.is_set()
    assert not outcome.ok and "DNS lookups" in outcome.error


def test_a_connection_made_as_the_deadline_passes_is_not_used_for_a_trickle(
    local_delivery, monkeypatch
):
    """The deadline shuts the connection's socket down, which exists only once connected
    (and, for TLS, past the handshake). With the lookup inside the 15 seconds, lookup,
    connect and handshake (5 s each) can use them all: the deadline then passed while there
    was no socket to shut, and the answer after it was read a line per 5 seconds, or a
    "100 Continue" at a time, for as long as the far end went on."""
    monkeypatch.setattr(transport, "TOTAL", 2.0)  # each read may take 2 s: longer than a line
    sent: list[bytes] = []
    lines = [b"HTTP/1.1 100 Continue\r\n\r\n"] * 6
    real_connect = socket.create_connection

    def connect_as_the_deadline_passes(address, *args, **kwargs):
        time.sleep(2.5)  # (the deadline passes meanwhile)
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", connect_as_the_deadline_passes)
    for port in trickler(lines, sent=sent):
        outcome = transport.post(f"http://127.0.0.1:{port}/hook", body=b"{}", headers={})
        assert not outcome.ok and "No complete answer within 2 seconds" in outcome.error
        assert len(sent) < len(lines)  # cut before the far end was done
