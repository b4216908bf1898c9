"""Revocation holds for the very next call, even while the key is busy on other threads.

Several client threads call a real server (pytest-django's live_server) with one key,
as fast as they can, while the main thread revokes it. Every request is stamped with the
moment it was sent; none sent after api_key_revoke() returned may succeed.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection

from accounts.models import Project
from apikeys.services import api_key_revoke

THREADS = 4
BEFORE_REVOKE = 0.4  # seconds of traffic before the revocation
AFTER_REVOKE = 0.6  # and after it


@dataclass(frozen=True)
class Call:
    """One request a client thread made: when it was sent and answered, and how it ended, so
    the test can compare its start with the moment the revocation returned."""

    started: float
    finished: float
    status: int
    code: str


@pytest.fixture
def one_database_user_at_a_time(monkeypatch, transactional_db):
    """On SQLite the test database lives in memory, and the live server's threads share
    the main thread's one connection; two threads' transactions on one connection would
    trample each other. A lock around each request (and around the revocation) lets the
    threads take turns on it, as SQLite's single writer makes them do anyway. PostgreSQL
    gets one connection per thread and no lock: the race there is real."""
    if connection.vendor != "sqlite":
        yield _NoLock()
        return
    lock = threading.RLock()
    handle = WSGIHandler.__call__

    def serialised(self, environ, start_response):
        with lock:
            return handle(self, environ, start_response)

    monkeypatch.setattr(WSGIHandler, "__call__", serialised)
    yield lock


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def call_until(stop: threading.Event, url: str, token: str, calls: list[Call]) -> None:
    parts = urlsplit(url)
    body = json.dumps({"prompt": "load"})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    while not stop.is_set():
        client = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        started = time.monotonic()
        try:
            client.request("POST", "/v1/agents/my-agent/invoke", body, headers)
            response = client.getresponse()
            payload = json.loads(response.read() or b"{}")
        finally:
            client.close()
        code = payload.get("error", {}).get("code", "") if isinstance(payload, dict) else ""
        calls.append(Call(started, time.monotonic(), response.status, code))


def test_no_request_sent_after_revocation_succeeds(
    live_server, one_database_user_at_a_time, make_user, make_key
):
    user = make_user(email="load@example.com")
    project = Project.objects.for_user(user).get()
    key, token = make_key(project, name="Busy")

    stop = threading.Event()
    per_thread: list[list[Call]] = [[] for _ in range(THREADS)]
    threads = [
        threading.Thread(target=call_until, args=(stop, live_server.url, token, calls))
        for calls in per_thread
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(BEFORE_REVOKE)
        revoking = time.monotonic()
        with one_database_user_at_a_time:
            assert api_key_revoke(api_key=key, by=user)
        revoked = time.monotonic()
        time.sleep(AFTER_REVOKE)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    assert not any(thread.is_alive() for thread in threads)

    calls = sorted((c for calls in per_thread for c in calls), key=lambda c: c.started)
    before = [c for c in calls if c.finished < revoking]
    after = [c for c in calls if c.started > revoked]

    # Every answer is one of the two the test expects: nothing broke under load.
    outcomes = {(c.status, c.code) for c in calls}
    assert outcomes <= {(200, ""), (401, "expired_api_key")}, outcomes
    assert any(c.status == 200 for c in before), "no call succeeded before the revocation"
    assert len(after) >= THREADS, "too few calls after the revocation to show anything"
    succeeded_after = [c for c in after if c.status == 200]
    assert succeeded_after == [], f"{len(succeeded_after)} calls sent after revocation succeeded"
    assert all((c.status, c.code) == (401, "expired_api_key") for c in after)
    # Calls that ended before the revocation began were all served with the key valid;
    # calls in flight during it may go either way.
    assert all(c.status == 200 for c in before)
