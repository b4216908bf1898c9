"""How a long-running process (the scheduler, the ingest) tells its log that the database
does not answer: at the first failure, then once a minute, and when it answers again.
They try every second; a warning at each try made a ten-minute failover 600 lines per
process, burying the rest of the log, and none at all left an operator blind."""

from __future__ import annotations

import logging
from dataclasses import dataclass

SAID_EVERY_SECONDS = 60


@dataclass
class OutageLog:
    """`first`, `again` (with the seconds since the first failure as `%d`) and `back`
    (the same) are the process's own lines. Callers pass their monotonic clock's `now`."""

    logger: logging.Logger
    first: str
    again: str
    back: str
    since: float | None = None
    said_at: float = 0.0

    def failed(self, now: float) -> None:
        if self.since is None:
            self.since = self.said_at = now
            self.logger.warning(self.first)
        elif now - self.said_at >= SAID_EVERY_SECONDS:
            self.said_at = now
            self.logger.warning(self.again, now - self.since)

    def answered(self, now: float) -> None:
        if self.since is not None:
            self.logger.info(self.back, now - self.since)
            self.since = None
