"""How long an answered call takes to reach the execution log, measured under the load.

Ours writes a call's execution off the request path (the usage stream, then the ingest's
batch), so `GET /v1/execution-logs` lags its answer; the issue's target is under a second.
While ours is under load, a thread of the harness calls invoke every PERIOD seconds with
a key of its own (the load key's usage count stays the load's), and asks PostgreSQL for
that call's execution row every POLL seconds until it is there: the time from the answer
to the row is the lag. Its connection is named APPLICATION_NAME, so that the CPU the
rounds count as ours' PostgreSQL leaves it out (rounds.backend_cpu).
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from servers import request

APPLICATION_NAME = "bench-lag-probe"
PERIOD = 0.25  # a call every quarter second: about 0.2% of what the load sends
POLL = 0.005
GIVE_UP = 30.0  # a row not there by then is counted missing


@dataclass
class LagProbe:
    """Samples of answer-to-row lag, in seconds, over every run it was running for."""

    port: int
    path: str
    authorization: str
    database_url: str
    table: str  # the execution table, and its column of the id answers show
    column: str
    lags: list[float] = field(default_factory=list)
    missing: int = 0
    failed: int = 0  # probe calls not answered 200 (they have no execution)

    @contextmanager
    def running(self) -> Iterator[None]:
        stop = threading.Event()
        thread = threading.Thread(target=self._run, args=(stop,), daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(GIVE_UP + 5)

    def _run(self, stop: threading.Event) -> None:
        with psycopg.connect(
            self.database_url, autocommit=True, application_name=APPLICATION_NAME
        ) as db:
            query = f'SELECT 1 FROM "{self.table}" WHERE "{self.column}" = %s'
            while not stop.wait(PERIOD):
                execution_id = self._call()
                if execution_id is None:
                    self.failed += 1
                    continue
                answered = time.monotonic()
                while db.execute(query, [execution_id], prepare=True).fetchone() is None:
                    if time.monotonic() - answered > GIVE_UP:
                        self.missing += 1
                        break
                    time.sleep(POLL)
                else:
                    self.lags.append(time.monotonic() - answered)

    def _call(self) -> str | None:
        answer = request(
            self.port,
            "POST",
            self.path,
            body=b'{"prompt":"probe"}',
            headers={"Content-Type": "application/json", "Authorization": self.authorization},
        )
        if answer.status != 200:
            return None
        return str(json.loads(answer.body)["execution"]["id"])

    def summary(self, target_seconds: float) -> str:
        if not self.lags:
            return (
                f"execution log: no probe call was seen ({self.missing} missing, "
                f"{self.failed} not answered 200)"
            )
        ordered = sorted(self.lags)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        worst = ordered[-1]
        met = "met" if worst < target_seconds and not self.missing else "NOT met"
        return (
            f"execution log under load: {len(ordered)} probe calls, answer to row "
            f"p50 {1000 * statistics.median(ordered):.0f} ms, p99 {1000 * p99:.0f} ms, "
            f"max {1000 * worst:.0f} ms; {self.missing} missing, {self.failed} not answered 200 "
            f"(target: every one within {target_seconds:g} s: {met})"
        )
