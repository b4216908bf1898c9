"""List answers of the API: `limit` and `cursor` parameters, and the page they give.

    {"data": [...], "hasMore": true, "nextCursor": "…"}

A cursor is the last row's position (an agent's name, a row id), base64url-encoded; one
this API could not have given out is refused before it reaches the database.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

from django.db.models import Model
from django.http import HttpRequest

from api import errors
from core.paging import KeysetPage

MAX_LIMIT = 100
# Row ids are positive bigints: at most 19 digits, checked against the range below.
DIGITS = re.compile(r"[0-9]{1,19}")
MAX_BIGINT = 2**63 - 1


def limit_param(request: HttpRequest, default: int = 20) -> int:
    raw = request.GET.get("limit", str(default))
    # ASCII digits only: str.isdigit() also accepts "²", on which int() raises (a 500).
    if not DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise errors.invalid_field_value("limit", f"must be a whole number from 1 to {MAX_LIMIT}.")
    return int(raw)


def cursor_param(request: HttpRequest, accepts: Callable[[str], bool]) -> str | None:
    """The `cursor` parameter decoded, if it is one this API could have given out: the
    position of a row, which `accepts` checks (an agent name, a row id). Anything else, a
    NUL byte among it, never reaches the database."""
    raw = request.GET.get("cursor")
    if not raw:
        return None
    try:
        position = base64.urlsafe_b64decode(raw.encode() + b"==").decode()
    except (ValueError, UnicodeDecodeError):
        position = None
    if position is None or not accepts(position):
        raise errors.invalid_field_value("cursor", "is not a cursor this API gave out.")
    return position


def is_row_id(value: str) -> bool:
    return DIGITS.fullmatch(value) is not None and 0 < int(value) <= MAX_BIGINT


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def page_json[T: Model](
    page: KeysetPage[T], as_json: Callable[[T], dict[str, Any]]
) -> dict[str, Any]:
    """A list answer: the rows, and the cursor of the next page (the last row's key)."""
    return {
        "data": [as_json(row) for row in page.rows],
        "hasMore": page.next is not None,
        "nextCursor": encode_cursor(str(page.next[0])) if page.next else None,
    }
