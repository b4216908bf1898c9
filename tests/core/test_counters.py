"""The throttles' counter: counts within a window, and counts in the process when the
cache cannot (a Redis outage must neither take sign-up down nor the brake off guessing)."""

from __future__ import annotations

import logging

import pytest
from django.core.cache import cache

from core import counters


@pytest.fixture(autouse=True)
def _nothing_warned_yet(monkeypatch):
    """Each test starts as a fresh process would: nothing warned (nothing counted in it:
    tests/conftest.py)."""
    monkeypatch.setattr(counters, "_warned", counters._Warned())


def test_the_throttle_allows_up_to_the_limit_in_a_window():
    cache.clear()
    answers = [counters.throttle_allows("t:a", limit=3, window_seconds=60) for _ in range(5)]
    assert answers == [True, True, True, False, False]
    assert counters.throttle_allows("t:b", limit=3, window_seconds=60)


def test_with_the_cache_down_the_throttle_counts_in_the_process_and_says_so(monkeypatch, caplog):
    # It let every use through: the brake on guessing second-factor codes and passwords
    # came off with Redis.
    def down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(cache, "add", down)
    with caplog.at_level(logging.WARNING, logger="core.counters"):
        answers = [
            counters.throttle_allows("login-code:7", limit=2, window_seconds=60) for _ in range(4)
        ]
        assert answers == [True, True, False, False]
        # Sign-up and reset do not go down with Redis: another bucket counts afresh.
        assert counters.throttle_allows("signup:10.0.0.1", limit=1, window_seconds=60)
    assert "throttle login-code counted in this process only" in caplog.text
    assert "10.0.0.1" not in caplog.text


def test_with_the_cache_down_a_courtesy_is_not_given(monkeypatch):
    def down(*args, **kwargs):
        raise ConnectionError("Connection refused.")

    monkeypatch.setattr(cache, "add", down)
    assert not counters.throttle_allows(
        "reset-no-account", limit=200, window_seconds=3600, uncounted=False
    )


def _cache_down(monkeypatch):
    def down(*args, **kwargs):
        raise ConnectionError("Connection refused.")

    monkeypatch.setattr(cache, "add", down)


def test_with_the_cache_down_the_log_says_so_once_a_while_not_once_a_use(monkeypatch, caplog):
    # One warning per use: every failed sign-in, every page with a throttle wrote a line
    # while Redis was away, a flood that buried what else the log said.
    _cache_down(monkeypatch)
    clock = [1000.0]
    monkeypatch.setattr(counters.time, "monotonic", lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="core.counters"):
        for _ in range(50):
            counters.throttle_allows("audit-unknown-email", limit=1000, window_seconds=3600)
        assert len(caplog.records) == 1
        clock[0] += counters.WARN_EVERY
        counters.throttle_allows("audit-unknown-email", limit=1000, window_seconds=3600)
    assert len(caplog.records) == 2
    assert "50 uses" in caplog.records[1].getMessage()


def test_with_the_cache_down_a_courtesy_refused_is_not_logged_as_counted(monkeypatch, caplog):
    _cache_down(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="core.counters"):
        counters.throttle_allows(
            "reset-no-account", limit=200, window_seconds=3600, uncounted=False
        )
    assert "counted in this process" not in caplog.text
    assert "reset-no-account not given" in caplog.text
