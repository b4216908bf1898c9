"""Every CSV file the dashboard serves is written here, so that they all read alike (issue 13):

- column names in snake_case, checked when the header is built (`csv_header`); the columns
  that several files have share one name (`TIME_COLUMN`, `IP_COLUMN`), and the time is
  always the first column;
- every time in ISO 8601, in UTC, to the second, like 2026-12-04T13:42:03Z (`csv_time`);
- every text cell that a spreadsheet would run as a formula quoted (`csv_safe`).

An export hands over raw values (a datetime, a name, a status): `csv_lines` formats them,
so no export can write a time its own way or forget to quote a cell. Rows are formatted a
few hundred at a time and handed to the client as they are read, so an export of a million
rows never sits in memory.

Every export is bounded the same way: at most EXPORT_MAX_ROWS rows (its query cut with
`export_bounded`, so the database reads no more than that), and no longer than
EXPORT_MAX_SECONDS of writing. A file that stops early says so in its last row, in the
first column, where a spreadsheet shows it (`CUT_BY_ROWS`, `CUT_BY_TIME`); a file without
that row is complete. Without the time bound, gunicorn would end a sync worker that streams
for longer than its timeout (30 s) mid-file, and the file would end without a word.

The time bound holds inside a read too: the rows are read in a transaction whose every
statement the database cancels when the export's time is up (`_reads_end_by`), and a read
it cancels ends the file with the rows written so far and `CUT_BY_SLOW_READ`. A filter
that matches almost nothing in a huge log makes one read scan for as long as that takes;
time checked only between pieces never saw it.
"""

from __future__ import annotations

import csv
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import batched
from typing import Any

from django.db import OperationalError, connection, transaction
from django.db.models import Model, QuerySet
from django.http import StreamingHttpResponse

from core.db_errors import timed_out

ROWS_PER_WRITE = 500
TIME_COLUMN = "time_utc"
IP_COLUMN = "ip_address"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# The most rows one file holds: a spreadsheet opens about a million (Excel 1,048,576).
EXPORT_MAX_ROWS = 1_000_000
# Gunicorn's default worker timeout is 30 s, and a sync worker does not report back while
# it streams: a file is ended, with a note, well before the worker would be.
EXPORT_MAX_SECONDS = 20.0
# A read still running when the time is up gets this much more before the database
# cancels it (so a fast last read is not cut for nothing); the time left is given to the
# database again at most this often. Both well inside gunicorn's 30 s.
READ_GRACE_SECONDS = 1.0
TIGHTEN_EVERY_SECONDS = 0.5
CUT_BY_ROWS = (
    "NOT COMPLETE: this file stops at the newest {rows:,} rows, the most one file holds. "
    "Narrow the filters (a shorter time range) to export the older ones."
)
CUT_BY_TIME = (
    "NOT COMPLETE: this file stops at the newest {rows:,} rows, as many as could be written "
    "in {seconds:g} seconds. Narrow the filters (a shorter time range) to export the older ones."
)
CUT_BY_SLOW_READ = (
    "NOT COMPLETE: this file stops after the newest {rows:,} rows: finding more rows that "
    "match the filters took too long. Narrow the filters (a shorter time range) to export "
    "the older ones."
)
# The same cut before a first row: the usual one, a filter that matches almost nothing.
CUT_BY_SLOW_READ_NONE = (
    "NOT COMPLETE: finding the rows that match the filters took too long, so this file has "
    "none of them. Narrow the filters (a shorter time range) and export again."
)

_COLUMN_NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
# A cell starting with one of these is a formula to a spreadsheet (OWASP "CSV injection"),
# and so is one where they follow spaces or line breaks (some import dialogs trim them), or
# in their full-width forms (which East Asian spreadsheets take as the same operators).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


@dataclass(frozen=True, slots=True)
class CsvHeader:
    """The column names of one export. Build it with `csv_header`, which checks them."""

    names: tuple[str, ...]


def csv_header(*names: str) -> CsvHeader:
    """A header of `names`, or ValueError at import time if one breaks the naming rules."""
    odd = [name for name in names if not _COLUMN_NAME.fullmatch(name)]
    if odd:
        raise ValueError(f"CSV column names are snake_case: {odd}")
    if len(set(names)) != len(names):
        raise ValueError(f"A CSV column name is repeated: {names}")
    if not names or names[0] != TIME_COLUMN:
        raise ValueError(f"A CSV export starts with its time, as {TIME_COLUMN!r}: {names}")
    return CsvHeader(names)


def csv_time(moment: datetime) -> str:
    """`moment` in ISO 8601, UTC, to the second: 2026-12-04T13:42:03Z. Spreadsheets read it
    as a date and time; rows are in order in the file for what a second does not tell."""
    at = moment.astimezone(UTC)
    # The year by hand: strftime's %Y writes year 1 as "1", which is no ISO 8601 year.
    return f"{at.year:04d}{at.strftime(TIME_FORMAT.removeprefix('%Y'))}"


def csv_safe(value: str) -> str:
    """`value`, with a leading apostrophe if a spreadsheet would read it as a formula.
    Names, paths, user agents and attempted emails are typed by people, some hostile."""
    formula = value.startswith(_FORMULA_STARTS) or value.lstrip().startswith(_FORMULA_STARTS)
    return "'" + value if formula else value


def csv_cell(value: object) -> object:
    """What the file holds for `value`: a time as `csv_time`, text made safe, None empty."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return csv_time(value)
    if isinstance(value, str):
        return csv_safe(value)
    return value


class _Echo:
    """A file that hands back what is written to it, so csv.writer can feed a stream."""

    def write(self, value: str) -> str:
        return value


def export_bounded[M: Model](rows: QuerySet[M, Any]) -> QuerySet[M, Any]:
    """`rows` (ordered, newest first) cut to one more than a file holds: the database reads
    no more than the file needs, and `csv_lines` sees that there was more."""
    return rows[: EXPORT_MAX_ROWS + 1]


def csv_lines(header: CsvHeader, rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """CSV text: the header, then the rows in pieces of ROWS_PER_WRITE (fewer, larger
    writes to the client), at most EXPORT_MAX_ROWS of them and for at most
    EXPORT_MAX_SECONDS; a file cut by either, or by a read the database cancelled, ends
    with a row that says so. Every read ends with the export's time (_reads_end_by)."""
    writer = csv.writer(_Echo())
    width = len(header.names)
    most, seconds = EXPORT_MAX_ROWS, EXPORT_MAX_SECONDS
    deadline = time.monotonic() + seconds
    written = 0
    lines: list[str] = []
    yield writer.writerow(header.names)
    try:
        with _reads_end_by(deadline + READ_GRACE_SECONDS) as tighten:
            source = _each_read_bounded(rows, tighten)
            for chunk in batched(source, ROWS_PER_WRITE):
                for row in chunk:
                    if written == most:
                        lines.append(_note(writer, width, CUT_BY_ROWS.format(rows=written)))
                        yield "".join(lines)
                        return
                    if len(row) != width:  # a column added to a header and not to its rows
                        raise ValueError(f"A CSV row has {len(row)} cells for {width} columns.")
                    lines.append(writer.writerow([csv_cell(value) for value in row]))
                    written += 1
                if time.monotonic() >= deadline and next(source, None) is not None:
                    cut = CUT_BY_TIME.format(rows=written, seconds=seconds)
                    lines.append(_note(writer, width, cut))
                    yield "".join(lines)
                    return
                yield "".join(lines)
                lines = []
    except OperationalError as error:
        # A filter that matches almost nothing in a huge log makes one read scan until it
        # is cancelled: the file ends with the rows it has and a note, not a broken transfer.
        if not timed_out(error):
            raise
        cut = CUT_BY_SLOW_READ.format(rows=written) if written else CUT_BY_SLOW_READ_NONE
        lines.append(_note(writer, width, cut))
        yield "".join(lines)


def _each_read_bounded(
    rows: Iterable[Sequence[object]], tighten: Callable[[], None]
) -> Iterator[Sequence[object]]:
    """`rows`, each asked for once `tighten` has bounded the reads it may need."""
    source = iter(rows)
    while True:
        tighten()
        try:
            row = next(source)
        except StopIteration:
            return
        yield row


@contextmanager
def _reads_end_by(stop: float) -> Iterator[Callable[[], None]]:
    """Meanwhile, the database cancels any statement still running at `stop` (a
    time.monotonic() moment), within TIGHTEN_EVERY_SECONDS: call the function it gives
    before each read.

    PostgreSQL: in a transaction, each statement's timeout is the time left (never more
    than the one the connection has). Outside one, Django reads through a cursor WITH
    HOLD, which PostgreSQL runs to its end as the transaction commits, where no statement
    timeout applies: a scan of tens of millions of rows ran for as long as it took, after
    gunicorn had ended the worker. SQLite: a progress handler interrupts the statement."""
    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('statement_timeout'), setting::bigint "
                "FROM pg_settings WHERE name = 'statement_timeout'"
            )
            configured, most_ms = cursor.fetchone()
            last = -math.inf

            def tighten() -> None:
                nonlocal last
                now = time.monotonic()
                if now - last < TIGHTEN_EVERY_SECONDS:
                    return
                last = now
                left_ms = max(1, math.ceil((stop - now) * 1000))  # 0 would be no timeout
                if most_ms:
                    left_ms = min(left_ms, most_ms)
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{left_ms}"])

            yield tighten
            # As it was, for what runs in the same transaction after (an enclosing atomic).
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [configured])
    elif connection.vendor == "sqlite":
        connection.ensure_connection()
        raw = connection.connection
        raw.set_progress_handler(lambda: time.monotonic() >= stop, 10_000)
        try:
            yield lambda: None
        finally:
            raw.set_progress_handler(None, 10_000)
    else:
        yield lambda: None


def _note(writer: Any, width: int, text: str) -> str:
    """A last row with `text` in its first column, the rest empty, so the file keeps its
    shape for a program and shows the words to a person."""
    return writer.writerow([csv_safe(text), *[""] * (width - 1)])


def csv_response(
    *, header: CsvHeader, rows: Iterable[Sequence[object]], filename: str
) -> StreamingHttpResponse:
    """An attachment named `filename`, streamed."""
    response = StreamingHttpResponse(
        csv_lines(header, rows), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
