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
"""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import batched
from typing import Any

from django.db.models import Model, QuerySet
from django.http import StreamingHttpResponse

ROWS_PER_WRITE = 500
TIME_COLUMN = "time_utc"
IP_COLUMN = "ip_address"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# The most rows one file holds: a spreadsheet opens about a million (Excel 1,048,576).
EXPORT_MAX_ROWS = 1_000_000
# Gunicorn's default worker timeout is 30 s, and a sync worker does not report back while
# it streams: a file is ended, with a note, well before the worker would be.
EXPORT_MAX_SECONDS = 20.0
CUT_BY_ROWS = (
    "NOT COMPLETE: this file stops at the newest {rows:,} rows, the most one file holds. "
    "Narrow the filters (a shorter time range) to export the older ones."
)
CUT_BY_TIME = (
    "NOT COMPLETE: this file stops at the newest {rows:,} rows, as many as could be written "
    "in {seconds:g} seconds. Narrow the filters (a shorter time range) to export the older ones."
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
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


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
    EXPORT_MAX_SECONDS; a file cut by either ends with a row that says so."""
    writer = csv.writer(_Echo())
    width = len(header.names)
    most, seconds = EXPORT_MAX_ROWS, EXPORT_MAX_SECONDS
    deadline = time.monotonic() + seconds
    source = iter(rows)
    written = 0
    yield writer.writerow(header.names)
    for chunk in batched(source, ROWS_PER_WRITE):
        lines = []
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
            lines.append(_note(writer, width, CUT_BY_TIME.format(rows=written, seconds=seconds)))
            yield "".join(lines)
            return
        yield "".join(lines)


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
