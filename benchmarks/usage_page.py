"""The usage page of one API key at a million log rows, timed over HTTP.

A signed-in client GETs the first page, then the page filtered by a rare outcome (which
has to look much further back for a page of rows), each a number of times after two
untimed requests; one more request of each runs in this process to count its queries.
"""

from __future__ import annotations

import html.parser
import statistics
import time
from typing import Any
from urllib.parse import urlsplit

from app_access import Fixture, signed_in_cookie, usage_page_path
from rounds import say
from servers import Response, Server, request

AIM_PAGE_MS = 100.0
# Filters timed on the seeded key: 4.3 % and 0.3 % of its calls, so the second one has to
# look much further back for a page of rows.
PAGE_FILTERS = ("outcome=client_error", "outcome=server_error")


class FilterFinder(html.parser.HTMLParser):
    """Query strings the page itself offers: filter links and <select> options in forms."""

    def __init__(self, page_path: str) -> None:
        super().__init__()
        self.page_path = page_path
        self.candidates: list[str] = []
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and (href := a.get("href") or a.get("hx-get") or ""):
            parts = urlsplit(href)
            if parts.query and parts.path in ("", self.page_path):
                self.candidates.append(parts.query)
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select and (value := a.get("value")):
            self.candidates.append(f"{self._select}={value}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def pick_filter(candidates: list[str]) -> str | None:
    """Prefer a filter by outcome or status; skip plain pagination."""
    useful = [c for c in candidates if not c.startswith(("page=", "cursor=", "before="))]
    for word in ("outcome", "status", "error"):
        for candidate in useful:
            if word in candidate:
                return candidate
    return useful[0] if useful else None


def time_page(port: int, path: str, cookie: str, runs: int) -> tuple[list[float], Response]:
    """`runs` timed GETs (ms), after two untimed ones so every worker has rendered it."""
    headers = {"Cookie": cookie, "Host": "127.0.0.1"}
    first = request(port, "GET", path, headers=headers)
    if first.status != 200:
        raise RuntimeError(f"GET {path} answered {first.status}, not 200")
    request(port, "GET", path, headers=headers)  # both workers have now rendered it once
    timings = []
    for _ in range(runs):
        answer = request(port, "GET", path, headers=headers)
        if answer.status != 200:
            raise RuntimeError(f"GET {path} answered {answer.status}, not 200")
        timings.append(answer.seconds * 1000)
    return timings, first


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]


def time_usage_page(server: Server, fixture: Fixture, runs: int, rows: int) -> list[str]:
    """Time the seeded key's usage page, first page and filtered; return report lines."""
    path = usage_page_path(fixture.slug, fixture.usage_key_id)
    cookie = signed_in_cookie(fixture.user_id)
    try:
        timings, first = time_page(server.port, path, cookie, runs)
    except RuntimeError as error:
        # The page is someone else's work in progress; the load figures still stand.
        line = f"usage page, {rows:,} rows: NOT MEASURED, {error} (see {server.log_path})"
        say("  " + line)
        return [line]
    say(f"  GET {path}  ({len(first.body):,} bytes, first request {first.seconds * 1000:.0f} ms)")
    finder = FilterFinder(path)
    finder.feed(first.body.decode("utf-8", errors="replace"))
    queries = [q for q in PAGE_FILTERS if q in finder.candidates]
    if not queries:
        queries = [pick_filter(finder.candidates) or PAGE_FILTERS[0]]
        if not finder.candidates:
            say("  (the page offers no filter; the filtered figure may be the same page)")
    pages: list[tuple[str, str, list[float]]] = [("first page", path, timings)]
    for query in queries:
        label, url = f"filtered ?{query}", f"{path}?{query}"
        try:
            pages.append((label, url, time_page(server.port, url, cookie, runs)[0]))
        except RuntimeError as error:
            say(f"  {label}: NOT MEASURED, {error}")
    lines = []
    for label, url, values in pages:
        median = statistics.median(values)
        verdict = "met" if median < AIM_PAGE_MS else "NOT met"
        sql = page_queries(url, cookie)
        lines.append(
            f"usage page, {rows:,} rows, {label}: median {median:.1f} ms, p95 {p95(values):.1f} ms "
            f"(aim < {AIM_PAGE_MS:.0f} ms: {verdict}); {sql}"
        )
        say("  " + lines[-1])
    say(
        f"  ({runs} timed GETs each over HTTP from a signed-in client after two untimed ones; "
        "SQL figures from one in-process request)"
    )
    return lines


def page_queries(url: str, cookie: str) -> str:
    """One in-process request of the page: its time, its queries and their time."""
    from django.db import connection
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    name, _, value = cookie.partition("=")
    client.cookies[name] = value
    client.get(url)  # templates compiled, connection open
    times: list[float] = []

    def timed(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            times.append((time.perf_counter() - started) * 1000)

    with connection.execute_wrapper(timed):
        started = time.perf_counter()
        client.get(url)
        total = (time.perf_counter() - started) * 1000
    slowest = ", ".join(f"{t:.1f}" for t in sorted(times, reverse=True)[:3])
    return (
        f"in-process {total:.0f} ms, of which {len(times)} queries {sum(times):.1f} ms "
        f"(slowest {slowest})"
    )
