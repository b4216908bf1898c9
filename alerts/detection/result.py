"""What a run did (DetectionResult), and how each part of it runs on its own: `_isolated`
runs one check, one key's check or one flag in a savepoint, and a failure on its data is
logged and counted there while the run goes on."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction

from alerts.models import Flag
from alerts.token_networks import RunMemory
from core.db_errors import run_must_stop

logger = logging.getLogger(__name__)


@dataclass
class DetectionResult:
    """What one detect() run did: the counts detect_suspicious_activity prints, and the flags
    it raised."""

    rows: int = 0
    flags_raised: int = 0
    flags_updated: int = 0
    emails: int = 0
    # Security notices of PATs used from new networks (alerts/token_networks.py).
    notices: int = 0
    # Checks, flags or emails that failed on their own data: logged, skipped, counted.
    failures: int = 0
    raised: list[Flag] = field(default_factory=list)
    # New networks found per key in this run, and the keys whose calls' networks the rest
    # of the run leaves unread, each with its new-network alert still to be told so
    # (None once told, or nothing to tell; alerts/detection/new_networks.py,
    # NEW_NETWORKS_PER_RUN, and a full key's networks a person was told of).
    networks_found: dict[int, int] = field(default_factory=dict)
    networks_unread: dict[int, int | None] = field(default_factory=dict)
    # The same for PATs' networks (alerts/token_networks.py, NEW_NETWORKS_PER_RUN).
    token_networks: RunMemory = field(default_factory=RunMemory)


def _isolated[T](what: str, run: Callable[[], T], result: DetectionResult) -> T | None:
    """Run `run` in a savepoint. If it fails on its data, or runs into the statement or
    lock timeout (its query too slow, its row held by another transaction), undo only it,
    log, count, go on; if the database itself is gone, or cannot run the SQL at all
    (core.db_errors.run_must_stop), stop the run (the next one retries from the cursor).
    A timeout stopped the run once: the next run read the same batch, met the same
    timeout, and detection stopped for every project."""
    try:
        with transaction.atomic():
            return run()
    except Exception as error:
        if run_must_stop(error):
            raise
        logger.exception("detector: %s failed; the rest of the run went on", what)
        result.failures += 1
        return None
