"""Text that goes into mail headers."""

from __future__ import annotations

import re

from core.validators import DIRECTION_CONTROLS

# Line breaks and every other control character (C0, DEL, C1, and the Unicode line and
# paragraph separators): in a header, a line break would start a header of its own.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(text: str, *, limit: int = 200) -> str:
    """`text` as one line for a mail header: control characters become a space, direction
    overrides go (names saved before they were refused may hold them), and it is cut to
    `limit` characters. Django refuses a header with a newline (BadHeaderError); this
    makes sure a customer's name never gets that far."""
    flat = " ".join(_CONTROL.sub(" ", DIRECTION_CONTROLS.sub("", text)).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
