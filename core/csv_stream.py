"""Streaming a long table as CSV: rows are formatted a few hundred at a time and handed to
the client as they are read, so an export of a million rows never sits in memory."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from itertools import batched

from django.http import StreamingHttpResponse

ROWS_PER_WRITE = 500
# A cell starting with one of these is a formula to a spreadsheet (OWASP "CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: str) -> str:
    """`value`, with a leading apostrophe if a spreadsheet would read it as a formula.
    Names, paths, user agents and attempted emails are typed by people, some hostile."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


class _Echo:
    """A file that hands back what is written to it, so csv.writer can feed a stream."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """CSV text: the header, then the rows in pieces of ROWS_PER_WRITE (fewer, larger
    writes to the client)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for chunk in batched(rows, ROWS_PER_WRITE):
        yield "".join([writer.writerow(row) for row in chunk])


def csv_response(
    *, header: Sequence[str], rows: Iterable[Sequence[object]], filename: str
) -> StreamingHttpResponse:
    """An attachment named `filename`, streamed."""
    response = StreamingHttpResponse(
        csv_lines(header, rows), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
