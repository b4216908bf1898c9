"""The throttles' counter: counts within a window, and lets requests through when the
cache cannot count (a Redis outage must not take sign-up or password reset down)."""

from __future__ import annotations

import logging

from django.core.cache import cache

from core import counters


def test_the_throttle_allows_up_to_the_limit_in_a_window():
    cache.clear()
    answers = [counters.throttle_allows("t:a", limit=3, window_seconds=60) for _ in range(5)]
    assert answers == [True, True, True, False, False]
    assert counters.throttle_allows("t:b", limit=3, window_seconds=60)


def test_the_throttle_fails_open_and_says_so_when_the_cache_is_down(monkeypatch, caplog):
    def down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(cache, "add", down)
    with caplog.at_level(logging.WARNING, logger="core.counters"):
        assert counters.throttle_allows("signup:10.0.0.1", limit=1, window_seconds=60)
    assert "throttle signup not counted" in caplog.text
    assert "10.0.0.1" not in caplog.text
