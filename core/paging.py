"""Keyset pagination: one index-backed page at a time, never OFFSET, never COUNT.

A queryset is read in a fixed order of unique keys, e.g. newest first on
("-created_at", "-id"). A page is named by the key of a row beside it: the rows that
*follow* a key (further along the order: older, in a newest-first log) or the rows that
*precede* it (back towards the start: newer). The same function serves the dashboard's
logs (which walk both ways) and the API's lists (which only follow a cursor).

    page = keyset_page(records, order=("-created_at", "-id"), following=cursor, size=50)
    page.rows, page.next, page.previous, page.is_first
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Model, Q, QuerySet

type Key = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class KeysetPage[T: Model]:
    """Up to a page of rows in order, and the keys the pages beside it start from."""

    rows: list[T]
    next: Key | None  # more rows follow: `following=next` reads them
    previous: Key | None  # rows precede this page: `preceding=previous` reads them
    is_first: bool  # nothing precedes this page (as of this read)


def _fields(order: tuple[str, ...]) -> list[tuple[str, bool]]:
    """(field name, descending) for each term of `order`."""
    return [(term.lstrip("-"), term.startswith("-")) for term in order]


def _beyond(order: tuple[str, ...], key: Key, *, forward: bool) -> Q:
    """The rows strictly after `key` in `order` (forward) or strictly before it.

    Lexicographic over the terms: (a past a₀) OR (a = a₀ AND b past b₀) … The first term's
    "past or equal" is said outright as well: it is implied, and it is what lets the
    database start its index scan at the key instead of walking to it.
    """
    fields = _fields(order)
    condition = Q()
    equal = Q()
    for index, (name, descending) in enumerate(fields):
        later = "lt" if descending == forward else "gt"
        condition |= equal & Q(**{f"{name}__{later}": key[index]})
        equal &= Q(**{name: key[index]})
    first, descending = fields[0]
    bound = "lte" if descending == forward else "gte"
    return Q(**{f"{first}__{bound}": key[0]}) & condition


def _reversed(order: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(term[1:] if term.startswith("-") else f"-{term}" for term in order)


def key_of[T: Model](row: T, order: tuple[str, ...]) -> Key:
    return tuple(getattr(row, name) for name, _ in _fields(order))


def keyset_page[T: Model](
    rows: QuerySet[T],
    *,
    order: tuple[str, ...],
    following: Key | None = None,
    preceding: Key | None = None,
    size: int,
) -> KeysetPage[T]:
    """One page of `rows` in `order`: the first, the one just after `following`, or the one
    just before `preceding`. One query of at most size + 1 rows.

    When less than a page precedes `preceding`, the first page is answered, full: walking
    back always ends on the same first page that the unpaged read shows.
    """
    if preceding is not None:
        found = list(
            rows.filter(_beyond(order, preceding, forward=False)).order_by(*_reversed(order))[
                : size + 1
            ]
        )
        if len(found) > size:
            page = found[:size][::-1]
            return KeysetPage(page, key_of(page[-1], order), key_of(page[0], order), is_first=False)
        following = None  # less than a page precedes it: that is the first page

    if following is not None:
        rows = rows.filter(_beyond(order, following, forward=True))
    found = list(rows.order_by(*order)[: size + 1])
    page = found[:size]
    next_key = key_of(page[-1], order) if len(found) > size else None
    if following is None:
        return KeysetPage(page, next_key, None, is_first=True)
    # Reached by following a key: the row at that key, at least, precedes this page.
    return KeysetPage(page, next_key, key_of(page[0], order) if page else following, is_first=False)
