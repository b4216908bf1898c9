"""`manage.py ingest_usage`: write the usage entries (and executions) that the API workers
put on the Redis stream into the database, acknowledging each batch after its commit.

Needs REDIS_URL (without it, each worker writes its own buffer and there is nothing to
ingest). `make run` and `make serve` start it beside the web server; elsewhere run it as a
service of its own, one or more per deployment: they share the stream's consumer group.
Stops cleanly on SIGTERM or Ctrl-C after the batch in hand. `--once` drains what is there
and exits.

A reader is named after its host, so that a restarted one first writes what it had read
and not yet written (its own backlog, say while the database was locked) at once; the
backlog of a host that is gone is taken over by the others after 30 seconds.
"""

from __future__ import annotations

import signal
import socket
from types import FrameType

from django.core.management.base import CommandError, CommandParser

from core.commands import OperatorCommand, require_name
from core.write_behind import StreamIngest


class Command(OperatorCommand):
    """Runs StreamIngest (core/write_behind.py) until stopped: a long-running service beside the
    web server whenever REDIS_URL is set, not a scheduled job (README, Scheduled jobs)."""

    help = "Write the usage entries and executions waiting on the Redis stream to the database."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="drain the stream, then exit")
        parser.add_argument(
            "--consumer",
            default=socket.gethostname(),
            help="this reader's name in the stream's consumer group (default: the host name)",
        )

    def handle(self, *args: object, once: bool, consumer: str, **options: object) -> None:
        require_name({"--consumer": consumer})
        try:
            ingest = StreamIngest(consumer=consumer)
        except RuntimeError as error:
            raise CommandError(str(error)) from error

        def stop(signum: int, frame: FrameType | None) -> None:
            ingest.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        stats = ingest.run(once=once)
        self.stdout.write(
            f"Wrote {stats.written:,} records in {stats.batches:,} batches; "
            f"dropped {stats.dropped:,}; waited for the database {stats.waits:,} times."
        )
